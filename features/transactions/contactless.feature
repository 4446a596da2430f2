@lifecycle @transactions
Feature: Contactless purchase
  A tap pays small amounts without a PIN; above the contactless CVM limit (50.00 EUR) the
  cardholder proves who they are with an online PIN, as a chip card would.

  Background:
    Given the bench "default"
    And the terminal has signed on

  @smoke
  Scenario: A tap below the CVM limit needs no PIN
    When the cashier starts a purchase of 20.00 EUR
    And the cardholder taps card "mastercard-debit"
    Then the terminal shows "APPROVED"
    And the terminal never showed "ENTER PIN"
    And the host received a "0200" with POS entry mode "071"
    And the host received a "0200" without a PIN block
    And the host received a "0200" with an ARQC (9F26) in its chip data
    And the customer receipt shows "CONTACTLESS", "20.00" and the card number masked as "541333******0434"

  Scenario: A tap at exactly the CVM limit still needs no PIN
    When the cashier starts a purchase of 50.00 EUR
    And the cardholder taps card "mastercard-debit"
    Then the terminal shows "APPROVED"
    And the terminal never showed "ENTER PIN"

  # the emulated host checks online PINs against its own table (1234 unless configured)
  Scenario: A tap above the CVM limit asks for the PIN
    When the cashier starts a purchase of 75.00 EUR
    And the cardholder taps card "mastercard-debit" and enters PIN "1234"
    Then the terminal shows "APPROVED"
    And the host received a "0200" with amount 75.00 EUR
    And the host received an encrypted PIN block
    And the host received a "0200" with POS entry mode "071"
    And the host approved it with response code "00"
