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

  Scenario: The card asks for authorisation, the host answers with an ARPC and the card accepts
    When the cashier starts a purchase of 64.20 EUR
    And the cardholder inserts card "visa-credit" and enters PIN "1234"
    Then the terminal shows "APPROVED"
    And the host received a "0200" with an ARQC (9F26) in its chip data
    And the host received a "0200" with POS entry mode "051"
    And the host's answer carried issuer authentication data (91) in its chip data
    And the host received no "0400"
    And the cash register is told the sale was approved
    And the merchant receipt shows "CHIP", "PIN VERIFIED" and "64.20"

  Scenario: A chip card swiped is sent back to the chip reader
    When the cashier starts a purchase of 30.00 EUR
    And the cardholder swipes card "visa-credit"
    Then the terminal shows "USE CHIP"
    And the terminal still shows "USE CHIP"
    When the cardholder inserts card "visa-credit" and enters PIN "1234"
    Then the terminal shows "APPROVED"
    And the host received exactly 1 "0200"
    And the host received a "0200" with POS entry mode "051"

  Scenario: A dead chip falls back to the stripe
    When the cashier starts a purchase of 30.00 EUR
    And the cardholder inserts card "fallback"
    Then the terminal shows "CHIP ERROR - SWIPE CARD"
    When the cardholder swipes card "fallback"
    Then the terminal shows "APPROVED"
    And the host received a "0200" with POS entry mode "801"
    And the merchant receipt shows "FALLBACK SWIPE" and "30.00"
