@lifecycle @transactions
Feature: Enciphered offline PIN
  A card whose CVM list asks for an enciphered PIN verified by the card gets the PIN
  block enciphered under its own public key with its challenge (GET CHALLENGE, VERIFY
  P2 = 88). The card checks it and counts the tries; the host never sees a PIN block.

  Background:
    Given the bench "default"
    And merchant "000000000000001" is provisioned with terminal "00000001"
    And the terminal has signed on

  @smoke
  Scenario: The right PIN is verified by the card and the sale approved
    When the cashier starts a purchase of 18.00 EUR
    And the cardholder inserts card "visa-offline-pin" and enters PIN "1234"
    Then the terminal shows "APPROVED"
    And the host saw the CVM result "enciphered PIN verified"
    And the host received a "0200" without a PIN block

  Scenario: A wrong PIN, then the right one
    When the cashier starts a purchase of 18.00 EUR
    And the cardholder inserts card "visa-offline-pin" and enters PIN "0000"
    Then the terminal shows "WRONG PIN - 2 TRIES LEFT"
    When the cardholder enters PIN "1234" again
    Then the terminal shows "APPROVED"
    And the host saw the CVM result "enciphered PIN verified"

  Scenario: Three wrong PINs block the PIN and the sale is declined offline
    When the cashier starts a purchase of 18.00 EUR
    And the cardholder inserts card "visa-offline-pin" and enters PIN "0000"
    Then the terminal shows "WRONG PIN - 2 TRIES LEFT"
    When the cardholder enters PIN "1111" again
    Then the terminal shows "WRONG PIN - 1 TRY LEFT"
    When the cardholder enters PIN "2222" again
    Then the terminal shows "PIN TRIES EXCEEDED"
    And the terminal shows "DECLINED BY CARD"
    And the host received no "0200"
