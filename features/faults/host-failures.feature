@lifecycle @faults @transaction-failure
Feature: The host fails in the middle of a purchase
  Whatever the host or the network does, the terminal tells the cashier the truth, reverses
  every authorisation it could not confirm until the host acknowledges the reversal, charges
  nobody twice, and its totals still reconcile with the host's at close of day.

  Background:
    Given the bench "default"
    And the terminal has signed on

  @smoke
  Scenario: The host does not answer: NO ANSWER - NOT CHARGED, then a reversal
    Given the host will not answer the next "0200"
    When the cashier starts a purchase of 10.00 EUR
    And the cardholder taps card "mastercard-debit"
    Then within 60 seconds the terminal shows "NO ANSWER - NOT CHARGED"
    And the cash register is told the sale was not charged
    And the host receives a reversal for that purchase
    And the host holds that purchase as reversed
    And nobody was charged twice
    And at close of day the terminal's totals match the host's
    And the host received a close of day with 0 sales for 0.00 EUR and 0 refunds for 0.00 EUR

  Scenario: No answer, then a power cut: the queued reversal survives it
    Given the host will not answer the next "0200"
    And the host will not answer the next 1 "0400" messages
    When the cashier starts a purchase of 10.00 EUR
    And the cardholder taps card "mastercard-debit"
    Then within 90 seconds the terminal shows "NO ANSWER - NOT CHARGED"
    When the terminal loses power and comes back
    Then the host receives a reversal for that purchase within 5 minutes
    And the host acknowledged the reversal of that purchase only after the power came back
    And the host holds that purchase as reversed
    And nobody was charged twice
    And at close of day the terminal's totals match the host's

  # the field timers matter here (30 s host timeout, 30 s reversal retry): simulated time only
  @simulated-time
  Scenario: A late approval is not honoured
    Given the host will answer the next "0200" after 40 seconds
    When the cashier starts a purchase of 25.00 EUR
    And the cardholder inserts card "visa-credit" and enters PIN "1234"
    Then within 60 seconds the terminal shows "NO ANSWER - NOT CHARGED"
    And the cash register is told the sale was not charged
    And the host receives a reversal for that purchase
    And the host had held back its answer to that purchase, and had not answered when the reversal came
    And the terminal never showed "APPROVED"
    And the host holds that purchase as reversed
    And nobody was charged twice
    And at close of day the terminal's totals match the host's
    And the host received a close of day with 0 sales for 0.00 EUR and 0 refunds for 0.00 EUR

  Scenario: The host closes the connection in the middle of the request
    Given the host will close the connection on the next "0200"
    When the cashier starts a purchase of 14.00 EUR
    And the cardholder inserts card "visa-credit" and enters PIN "1234"
    Then the terminal shows "NO ANSWER - NOT CHARGED"
    And the cash register is told the sale was not charged
    And the host receives a reversal for that purchase
    And the host holds that purchase as reversed
    And nobody was charged twice
    And at close of day the terminal's totals match the host's

  # the field timers matter here (30 s host timeout, 30 s reversal retry): simulated time only
  @simulated-time
  Scenario: A flaky host: the reversal is sent again until the host acknowledges it
    Given the host will not answer the next "0200"
    And the host will not answer the next 2 "0400" messages
    When the cashier starts a purchase of 19.00 EUR
    And the cardholder inserts card "visa-credit" and enters PIN "1234"
    Then the terminal shows "NO ANSWER - NOT CHARGED"
    And the cash register is told the sale was not charged
    When 61 seconds pass
    And 61 seconds pass
    Then the host received the reversal of that purchase 3 times, the last one as a repeat ("0401"), and acknowledged it
    And the host holds that purchase as reversed
    And nobody was charged twice
    And at close of day the terminal's totals match the host's

  Scenario: After the failure the next sale goes through and the day reconciles
    Given the host will not answer the next "0200"
    When the cashier starts a purchase of 21.00 EUR
    And the cardholder inserts card "visa-credit" and enters PIN "1234"
    Then the terminal shows "NO ANSWER - NOT CHARGED"
    When the cashier starts a purchase of 21.00 EUR
    And the cardholder inserts card "visa-credit" and enters PIN "1234"
    Then the terminal shows "APPROVED"
    And the cash register is told the sale was approved
    And nobody was charged twice
    When the cashier closes the day
    Then the host received a close of day with 1 sale for 21.00 EUR and 0 refunds for 0.00 EUR
    And the close of day totals equal what the cash register was told was sold
    And the host answered the close of day with "00"
