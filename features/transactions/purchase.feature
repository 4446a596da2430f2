@lifecycle @transactions
Feature: Chip and PIN purchase
  A provisioned terminal sells with chip and online PIN, and the receipt tells the truth.

  Background:
    Given the bench "default"
    And merchant "000000000000001" is provisioned with terminal "00000001"
    And the terminal has signed on

  @smoke
  Scenario: An approved purchase prints both copies with a masked card number
    When the cashier starts a purchase of 42.50 EUR
    And the cardholder inserts card "visa-credit" and enters PIN "1234"
    Then the terminal shows "APPROVED"
    And the host received a "0200" with amount 42.50 EUR and an encrypted PIN block
    And the host approved it with response code "00"
    And the printer printed 2 receipts
    And the customer receipt shows "APPROVED", "42.50" and the card number masked as "476173******0010"
