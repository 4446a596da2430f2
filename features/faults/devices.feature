@lifecycle @faults @device-failure
Feature: A device of the terminal fails
  A dead card reader or a jammed printer never costs money or a receipt: the terminal tells
  the cashier what is wrong, falls back where the card allows it or refuses clearly, holds
  what it could not print and prints it whole, once, when the device is back.

  Background:
    Given the bench "default"
    And the terminal has signed on

  @smoke
  Scenario: The card reader is dead: the chip cannot be read, the stripe pays
    Given the card reader is dead
    When the cashier starts a purchase of 30.00 EUR
    And the cardholder inserts card "visa-credit"
    Then the terminal shows "CHIP ERROR - SWIPE CARD"
    When the cardholder swipes card "visa-credit"
    Then the terminal shows "APPROVED"
    And the cash register is told the sale was approved
    And the host received a "0200" with POS entry mode "801"
    And the host approved 1 purchase
    And nobody was charged twice

  Scenario: The card reader does not answer and the cardholder gives up: a clear refusal, no charge
    Given the card reader does not answer
    When the cashier starts a purchase of 22.00 EUR
    And the cardholder inserts card "visa-credit"
    Then the terminal shows "CHIP ERROR - SWIPE CARD"
    When the cardholder cancels
    Then the terminal shows "CANCELLED"
    And the cash register is told the sale was cancelled
    And the host received no "0200"
    And nobody was charged twice

  Scenario: The paper jams in the middle of the receipt: it is held and printed again, whole, once
    Given the printer jams after 3 lines
    When the cashier starts a purchase of 12.00 EUR
    And the cardholder inserts card "visa-credit" and enters PIN "1234"
    Then the terminal shows "APPROVED"
    And the cash register is told the sale was approved
    And the terminal tells the cashier "PRINTER JAMMED"
    And the first receipt stopped after 3 lines
    When the jam is cleared
    Then the reprinted merchant copy is whole, from "POSLAB DEMO SHOP" to "MERCHANT COPY"
    And both held copies were printed, each showing "12.00"
    And only the 2 held copies were printed after the jam was cleared
    And nobody was charged twice
