@lifecycle @transactions @pre-authorisation
Feature: Pre-authorisation and completion
  A hotel or a fuel pump reserves an amount first and charges the final amount later; only
  the completion moves money, and it never exceeds what was reserved.

  Background:
    Given the bench "default"
    And the terminal has signed on

  @smoke
  Scenario: A reservation is completed with a smaller amount
    When the cashier starts a pre-authorisation of 150.00 EUR
    And the cardholder inserts card "visa-credit" and enters PIN "1234"
    Then the terminal shows "APPROVED"
    And the host received a "0100" with amount 150.00 EUR and an encrypted PIN block
    And the cash register is told the sale was approved
    When the cashier completes the pre-authorisation with 120.00 EUR
    Then the cash register is told the sale was approved
    And the host received a "0220" with amount 120.00 EUR
    And the terminal's totals match the host's

  Scenario: A completion above the reserved amount is refused
    When the cashier starts a pre-authorisation of 50.00 EUR
    And the cardholder inserts card "visa-credit" and enters PIN "1234"
    Then the terminal shows "APPROVED"
    When the cashier completes the pre-authorisation with 80.00 EUR
    Then the cash register is told the sale was declined
    And the terminal shows "AMOUNT ABOVE PRE-AUTHORISATION"
    And the host received no "0220"

  Scenario: A declined reservation cannot be completed
    When the cashier starts a pre-authorisation of 905.51 EUR
    And the cardholder inserts card "visa-credit" and enters PIN "1234"
    Then the terminal shows "INSUFFICIENT FUNDS"
    When the cashier completes the pre-authorisation with 100.00 EUR
    Then the cash register is told the sale was declined
    And the host received no "0220"
