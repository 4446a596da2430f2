@lifecycle @faults @system-failure
Feature: The terminal loses power in the middle of a sale
  The request the terminal had sent when the power went is reversed after the restart, from
  what the terminal wrote ahead to its store: nobody is charged twice and the books reconcile.

  Background:
    Given the bench "default"
    And the terminal has signed on

  @smoke
  Scenario: Power lost after the card, before the host answered
    Given the host will answer the next "0200" after 20 seconds
    When the cashier starts a purchase of 15.00 EUR
    And the cardholder inserts card "visa-credit" and enters PIN "1234"
    Then the host received a "0200" with amount 15.00 EUR
    When the terminal loses power and comes back
    Then the host receives a reversal for that purchase within 2 minutes
    And the host acknowledged the reversal of that purchase only after the power came back
    And the host holds that purchase as reversed
    And nobody was charged twice
    And at close of day the terminal's totals match the host's
    And the host received a close of day with 0 sales for 0.00 EUR and 0 refunds for 0.00 EUR

  Scenario: After the restart the terminal sells again and the day reconciles
    Given the host will answer the next "0200" after 20 seconds
    When the cashier starts a purchase of 15.00 EUR
    And the cardholder inserts card "visa-credit" and enters PIN "1234"
    Then the host received a "0200" with amount 15.00 EUR
    When the terminal loses power and comes back
    Then the host receives a reversal for that purchase within 2 minutes
    When the cashier starts a purchase of 15.00 EUR
    And the cardholder inserts card "visa-credit" and enters PIN "1234"
    Then the terminal shows "APPROVED"
    And the cash register is told the sale was approved
    And nobody was charged twice
    When the cashier closes the day
    Then the host received a close of day with 1 sale for 15.00 EUR and 0 refunds for 0.00 EUR
    And the close of day totals equal what the cash register was told was sold
    And the host answered the close of day with "00"

  Scenario: Power lost at the card prompt: the register asks, learns nothing ran, sends it once more
    When the cashier starts a purchase of 16.00 EUR
    Then the terminal shows "INSERT, TAP OR SWIPE CARD"
    When the terminal loses power and comes back
    Then after the restart the terminal shows "INSERT, TAP OR SWIPE CARD" again
    When the cardholder inserts card "visa-credit" and enters PIN "1234"
    Then the terminal shows "APPROVED"
    And the cash register is told the sale was approved
    And the host approved 1 purchase
    And nobody was charged twice
    And at close of day the terminal's totals match the host's

  Scenario: Power lost right after the sale: nothing is reversed, nothing is charged twice
    When the cashier starts a purchase of 17.00 EUR
    And the cardholder inserts card "visa-credit" and enters PIN "1234"
    Then the terminal shows "APPROVED"
    And the cash register is told the sale was approved
    When the terminal loses power and comes back
    Then the host approved 1 purchase
    And nobody was charged twice
    And at close of day the terminal's totals match the host's
    And the host received a close of day with 1 sale for 17.00 EUR and 0 refunds for 0.00 EUR
