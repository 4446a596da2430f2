@lifecycle @transactions
Feature: Refunds and voids
  The cash register refunds a sale to the card, or voids the last purchase; a receipt can
  be voided only once.

  Background:
    Given the bench "default"
    And the terminal has signed on

  @smoke
  Scenario: A refund to the card
    When the cashier starts a refund of 15.00 EUR
    And the cardholder inserts card "visa-credit"
    Then the terminal shows "APPROVED"
    And the cash register sent command "06 31"
    And the terminal never showed "ENTER PIN"
    And the host received a "0200" with processing code "20"
    And the host received a "0200" with amount 15.00 EUR
    And the host approved it with response code "00"
    And the cash register is told the sale was approved
    And the customer receipt shows "REFUND", "EUR -15.00" and the card number masked as "476173******0010"
    And the merchant receipt shows "REFUND" and "EUR -15.00"

  Scenario: The last purchase is voided with the original's reference
    When the cashier starts a purchase of 25.00 EUR
    And the cardholder inserts card "visa-credit" and enters PIN "1234"
    Then the terminal shows "APPROVED"
    When the cashier voids the last purchase
    Then the terminal shows "APPROVED"
    And the cash register sent command "06 30"
    And the cash register is told the sale was approved
    And the host received a "0200" with processing code "02"
    And the host received a void of the last purchase carrying its RRN
    And the customer receipt shows "VOID" and "25.00"

  Scenario: A receipt is voided only once
    When the cashier starts a purchase of 25.00 EUR
    And the cardholder inserts card "visa-credit" and enters PIN "1234"
    And the cashier voids the last purchase
    And the cashier voids the last purchase
    Then the terminal shows "ALREADY VOIDED"
    And the cash register is told the sale was declined
    And the host received exactly 2 "0200"
