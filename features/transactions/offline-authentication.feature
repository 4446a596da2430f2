@lifecycle @transactions
Feature: Offline data authentication
  Before it asks the card for a cryptogram the terminal checks the card's certificates
  (EMV Book 2) with the CA keys it holds: SDA, DDA or CDA, as the card's AIP offers.
  A failure sets its bit in the TVR, and the issuer's action codes decide what follows.

  Background:
    Given the bench "default"
    And merchant "000000000000001" is provisioned with terminal "00000001"
    And the terminal has signed on

  @smoke
  Scenario: A DDA card is approved with a clean TVR
    When the cashier starts a purchase of 42.50 EUR
    And the cardholder inserts card "visa-credit" and enters PIN "1234"
    Then the terminal shows "APPROVED"
    And offline data authentication by DDA succeeded and the host saw TVR "0000000000"
    And the host approved it with response code "00"
    And the host translated the PIN block into the issuer zone "iso-4" under key check value "7DF76B"

  Scenario: A CDA card signs its cryptogram and is approved
    When the cashier starts a purchase of 25.00 EUR
    And the cardholder inserts card "mastercard-debit" and enters PIN "1234"
    Then the terminal shows "APPROVED"
    And offline data authentication by CDA succeeded and the host saw TVR "0000000000"
    And the host received a "0200" with an ARQC (9F26) in its chip data
    And the host approved it with response code "00"

  Scenario: An SDA card's signed static data verifies
    When the cashier starts a purchase of 12.00 EUR
    And the cardholder inserts card "visa-sda" and enters PIN "1234"
    Then the terminal shows "APPROVED"
    And offline data authentication by SDA succeeded and the host saw TVR "0200000000"

  Scenario: A corrupted ICC certificate fails DDA and the issuer's denial code declines offline
    When the cashier starts a purchase of 30.00 EUR
    And the cardholder inserts card "visa-bad-cert" and enters PIN "1234"
    Then the terminal shows "DECLINED BY CARD"
    And the host received no "0200"

  Scenario: The same corrupted certificate without the issuer's denial bit goes online with the TVR bit set
    When the cashier starts a purchase of 30.00 EUR
    And the cardholder inserts card "visa-bad-cert-online" and enters PIN "1234"
    Then the terminal shows "APPROVED"
    And offline data authentication by DDA failed and the host saw TVR "0800000000"
