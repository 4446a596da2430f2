@lifecycle @close-of-day
Feature: Close of day
  At the end of the day the terminal settles with the host: the totals it sends (0500, DE 74/76/86/88/97)
  are what was sold, the host agrees, a Z report is printed and a new batch begins. When the
  host's books disagree, the terminal uploads its batch and settles again.

  Background:
    Given the bench "default"
    And the terminal has signed on

  @smoke
  Scenario: Purchases, a refund and a void settle to what was sold
    When the cashier starts a purchase of 42.50 EUR
    And the cardholder inserts card "visa-credit" and enters PIN "1234"
    And the sale is over
    And the cashier starts a purchase of 12.00 EUR
    And the cardholder taps card "mastercard-debit"
    And the sale is over
    And the cashier starts a purchase of 20.00 EUR
    And the cardholder inserts card "visa-credit" and enters PIN "1234"
    And the sale is over
    And the cashier voids the last purchase
    And the cashier starts a refund of 5.00 EUR
    And the cardholder inserts card "visa-credit"
    And the sale is over
    And the cashier closes the day
    Then the host received a close of day with 2 sales for 54.50 EUR and 1 refund for 5.00 EUR
    And the close of day's net amount is debit 49.50 EUR
    And the close of day totals equal what the cash register was told was sold
    And the host answered the close of day with "00"
    And the cash register is told the batch is closed
    And the Z report shows:
      | SALES         | 2         |
      | SALES TOTAL   | EUR 54.50 |
      | REFUNDS       | 1         |
      | REFUNDS TOTAL | EUR 5.00  |
      | VOIDED        | 1         |
      | BATCH CLOSED  |           |

  Scenario: The batch is closed: a second close of day right after settles nothing
    When the cashier starts a purchase of 30.00 EUR
    And the cardholder inserts card "visa-credit" and enters PIN "1234"
    And the sale is over
    And the cashier closes the day
    Then the host received a close of day with 1 sale for 30.00 EUR and 0 refunds for 0.00 EUR
    When the cashier closes the day
    Then the host received a close of day with 0 sales for 0.00 EUR and 0 refunds for 0.00 EUR
    And the host answered the close of day with "00"
    And the cash register is told the batch is closed

  Scenario Outline: Sales and refunds net out in the settlement (DE 97)
    When the cashier starts a purchase of <sale> EUR
    And the cardholder inserts card "visa-credit" and enters PIN "1234"
    And the sale is over
    And the cashier starts a refund of <refund> EUR
    And the cardholder inserts card "visa-credit"
    And the sale is over
    And the cashier closes the day
    Then the host received a close of day with 1 sale for <sale> EUR and 1 refund for <refund> EUR
    And the close of day's net amount is <side> <net> EUR
    And the host answered the close of day with "00"

    Examples:
      | sale  | refund | side   | net   |
      | 30.00 | 10.00  | debit  | 20.00 |
      | 10.00 | 25.00  | credit | 15.00 |
      | 8.00  | 8.00   | debit  | 0.00  |

  Scenario: The host lost a transaction: the terminal uploads its batch and settles again
    When the cashier starts a purchase of 18.00 EUR
    And the cardholder inserts card "visa-credit" and enters PIN "1234"
    And the sale is over
    And the cashier starts a purchase of 7.50 EUR
    And the cardholder taps card "mastercard-debit"
    And the sale is over
    And the cashier starts a refund of 3.00 EUR
    And the cardholder inserts card "visa-credit"
    And the sale is over
    And the host loses the last standing transaction of its batch (a host data error)
    And the cashier closes the day
    Then the host closed the batch after a batch upload
    And the terminal uploaded its batch: one "0320" for each of its 3 transactions
    And the last close of day carried processing code "960000"
    And the host received a close of day with 2 sales for 25.50 EUR and 1 refund for 3.00 EUR
    And the host answered the close of day with "00"
    And the cash register is told the batch is closed
    When the cashier closes the day
    Then the host received a close of day with 0 sales for 0.00 EUR and 0 refunds for 0.00 EUR
    And the host answered the close of day with "00"

  Scenario: A reversal still queued is delivered before the settlement
    Given the host will not answer the next "0200"
    And the host will not answer the next 1 "0400" messages
    When the cashier starts a purchase of 16.00 EUR
    And the cardholder inserts card "visa-credit" and enters PIN "1234"
    Then the terminal shows "NO ANSWER - NOT CHARGED"
    And the cash register is told the sale was not charged
    When the cashier closes the day
    Then the queued reversal of that purchase reached the host after the close of day began and before the settlement
    And the host received a close of day with 0 sales for 0.00 EUR and 0 refunds for 0.00 EUR
    And the host answered the close of day with "00"
    And nobody was charged twice

  Scenario: The operator closes the day on the terminal's keypad
    When the cashier starts a purchase of 9.90 EUR
    And the cardholder inserts card "visa-credit" and enters PIN "1234"
    And the sale is over
    And the operator closes the day on the terminal
    Then the host received a close of day with 1 sale for 9.90 EUR and 0 refunds for 0.00 EUR
    And the host answered the close of day with "00"
    And the Z report shows:
      | SALES        | 1        |
      | SALES TOTAL  | EUR 9.90 |
      | BATCH CLOSED |          |

  Scenario: The host does not answer the close of day: the batch stays open, nothing is lost
    When the cashier starts a purchase of 13.00 EUR
    And the cardholder inserts card "visa-credit" and enters PIN "1234"
    And the sale is over
    Given the host will not answer the next "0500"
    When the cashier closes the day
    Then the terminal shows "SETTLEMENT FAILED - BATCH STILL OPEN"
    And the cash register is told the close of day failed
    When the cashier closes the day
    Then the host received a close of day with 1 sale for 13.00 EUR and 0 refunds for 0.00 EUR
    And the host answered the close of day with "00"
    And the cash register is told the batch is closed
