@lifecycle @transactions
Feature: Magnetic stripe purchase
  A card without a chip is swiped and signed for: the merchant copy has a signature line.

  Background:
    Given the bench "default"
    And the terminal has signed on

  @smoke
  Scenario: A stripe-only card is swiped and signed for
    When the cashier starts a purchase of 18.00 EUR
    And the cardholder swipes card "magstripe-only"
    Then the terminal shows "APPROVED"
    And the terminal never showed "ENTER PIN"
    And the host received a "0200" with POS entry mode "901"
    And the host received a "0200" without a PIN block
    And the merchant receipt shows "SIGNATURE", "SWIPE" and "18.00"
    And the customer receipt does not show "SIGNATURE"
