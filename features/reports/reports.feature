@lifecycle @reports
Feature: X and Z reports
  The operator prints an X report at any time of the day (F1 on the keypad): sales, refunds,
  the net, the average ticket and the merchant's fees per card type. It leaves the batch
  open. The Z report, printed at close of day, shows the same totals and closes the batch.
  Training transactions are never counted.

  Background:
    Given the bench "default"
    And the terminal has signed on

  @smoke
  Scenario: The X report shows sales, refunds, the net, the average ticket and fees per card type
    When the cashier starts a purchase of 100.00 EUR
    And the cardholder inserts card "visa-credit" and enters PIN "1234"
    And the sale is over
    And the cashier starts a purchase of 20.00 EUR
    And the cardholder taps card "mastercard-debit"
    And the sale is over
    And the cashier starts a refund of 10.00 EUR
    And the cardholder inserts card "visa-credit"
    And the sale is over
    And the operator prints the X report
    Then the X report shows:
      | SALES          | 2          |
      | SALES TOTAL    | EUR 120.00 |
      | REFUNDS        | 1          |
      | REFUNDS TOTAL  | EUR 10.00  |
      | NET            | EUR 110.00 |
      | AVERAGE TICKET | EUR 60.00  |
      | CREDIT 1       | EUR 100.00 |
      | FEE CREDIT     | EUR 0.90   |
      | DEBIT 1        | EUR 20.00  |
      | FEE DEBIT      | EUR 0.06   |
      | FEES TOTAL     | EUR 0.96   |
    And the X report does not show "BATCH CLOSED"
    And the fees on the X report equal the fees the host charged

  Scenario Outline: The merchant's fee per card type (credit 0.9 %, debit 0.3 %, rounded half up)
    When the cashier starts a purchase of <amount> EUR
    And the cardholder <presents>
    And the sale is over
    And the operator prints the X report
    Then the X report shows:
      | SALES       | 1            |
      | <type> 1    | EUR <amount> |
      | FEE <type>  | EUR <fee>    |
      | FEES TOTAL  | EUR <fee>    |
    And the fees on the X report equal the fees the host charged

    Examples:
      | amount | presents                                             | type   | fee  |
      | 100.00 | inserts card "visa-credit" and enters PIN "1234"     | CREDIT | 0.90 |
      | 33.33  | inserts card "visa-credit" and enters PIN "1234"     | CREDIT | 0.30 |
      | 20.00  | taps card "mastercard-debit"                         | DEBIT  | 0.06 |
      | 45.00  | taps card "mastercard-debit"                         | DEBIT  | 0.14 |

  Scenario: The X report leaves the batch open: the close of day still settles its sales
    When the cashier starts a purchase of 25.00 EUR
    And the cardholder inserts card "visa-credit" and enters PIN "1234"
    And the sale is over
    And the operator prints the X report
    Then the X report shows:
      | SALES       | 1         |
      | SALES TOTAL | EUR 25.00 |
    And the host received no "0500"
    When the cashier starts a purchase of 5.00 EUR
    And the cardholder taps card "mastercard-debit"
    And the sale is over
    And the cashier closes the day
    Then the host received a close of day with 2 sales for 30.00 EUR and 0 refunds for 0.00 EUR
    And the host answered the close of day with "00"

  Scenario: The Z report at close of day shows the day's totals and BATCH CLOSED
    When the cashier starts a purchase of 60.00 EUR
    And the cardholder inserts card "visa-credit" and enters PIN "1234"
    And the sale is over
    And the cashier starts a purchase of 40.00 EUR
    And the cardholder taps card "mastercard-debit"
    And the sale is over
    And the cashier starts a refund of 15.00 EUR
    And the cardholder inserts card "visa-credit"
    And the sale is over
    And the operator prints the X report
    Then the X report shows:
      | SALES          | 2         |
      | NET            | EUR 85.00 |
      | AVERAGE TICKET | EUR 50.00 |
    When the cashier closes the day
    Then the Z report shows:
      | Z REPORT - CLOSE OF DAY |            |
      | SALES                   | 2          |
      | SALES TOTAL             | EUR 100.00 |
      | REFUNDS                 | 1          |
      | REFUNDS TOTAL           | EUR 15.00  |
      | NET                     | EUR 85.00  |
      | AVERAGE TICKET          | EUR 50.00  |
      | FEE CREDIT              | EUR 0.54   |
      | FEE DEBIT               | EUR 0.12   |
      | FEES TOTAL              | EUR 0.66   |
      | BATCH CLOSED            |            |
    And the host received a close of day with 2 sales for 100.00 EUR and 1 refund for 15.00 EUR

  Scenario: Training transactions are not counted
    When the operator switches training mode on
    And the cashier starts a purchase of 77.00 EUR
    And the cardholder inserts card "visa-credit" and enters PIN "1234"
    Then the terminal shows "APPROVED - TRAINING"
    When the sale is over
    And the operator switches training mode off
    And the cashier starts a purchase of 11.00 EUR
    And the cardholder inserts card "visa-credit" and enters PIN "1234"
    And the sale is over
    And the operator prints the X report
    Then the X report shows:
      | SALES                  | 1         |
      | SALES TOTAL            | EUR 11.00 |
      | TRAINING (NOT COUNTED) | 1         |
    And no "0200" for 77.00 EUR reached the host
    When the cashier closes the day
    Then the host received a close of day with 1 sale for 11.00 EUR and 0 refunds for 0.00 EUR
    And the Z report shows:
      | SALES       | 1         |
      | SALES TOTAL | EUR 11.00 |
