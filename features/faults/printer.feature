@lifecycle @faults @hardware
Feature: The receipt printer fails
  A printer fault never costs a sale or a receipt: the sale completes, the terminal tells the
  cashier what is wrong, holds the receipts, and prints them whole once the fault is cleared.

  Background:
    Given the bench "default"
    And the terminal has signed on

  @smoke
  Scenario: Out of paper: the sale completes and the receipts wait for paper
    Given the printer is out of paper
    When the cashier starts a purchase of 12.00 EUR
    And the cardholder inserts card "visa-credit" and enters PIN "1234"
    Then the terminal shows "APPROVED"
    And the cash register is told the sale was approved
    And the terminal tells the cashier "PRINTER OUT OF PAPER"
    And no whole receipt was printed yet
    When paper is loaded
    Then the printer printed the held receipt showing "12.00"
    And both held copies were printed, each showing "12.00"

  Scenario: The paper runs out after 3 lines: the receipt is printed again in full
    Given the printer runs out of paper after 3 lines
    When the cashier starts a purchase of 12.00 EUR
    And the cardholder inserts card "visa-credit" and enters PIN "1234"
    Then the terminal shows "APPROVED"
    And the terminal tells the cashier "PRINTER OUT OF PAPER"
    And the first receipt stopped after 3 lines
    When paper is loaded
    Then the printer printed the held receipt showing "12.00"
    And the reprinted merchant copy is whole, from "POSLAB DEMO SHOP" to "MERCHANT COPY"
    And both held copies were printed, each showing "12.00"

  Scenario: The cover is open: the receipts are printed once it is closed
    Given the printer cover is open
    When the cashier starts a purchase of 8.50 EUR
    And the cardholder inserts card "visa-credit" and enters PIN "1234"
    Then the terminal shows "APPROVED"
    And the terminal tells the cashier "PRINTER COVER OPEN"
    And no whole receipt was printed yet
    When the cover is closed
    Then both held copies were printed, each showing "8.50"
    And every receipt printed so far was printed once

  Scenario: Receipts held for paper keep their order behind a second sale
    Given the printer is out of paper
    When the cashier starts a purchase of 6.00 EUR
    And the cardholder inserts card "visa-credit" and enters PIN "1234"
    And the sale is over
    And the cashier starts a purchase of 7.00 EUR
    And the cardholder taps card "mastercard-debit"
    And the sale is over
    Then no whole receipt was printed yet
    When paper is loaded
    Then the printer printed 4 receipts
    And the held receipts came out in the order of the sales: "6.00" before "7.00"

  Scenario: Paper near its end: the receipts print and the cashier is told to change the roll
    Given the printer paper is near its end
    When the cashier starts a purchase of 5.00 EUR
    And the cardholder inserts card "visa-credit" and enters PIN "1234"
    Then the terminal shows "APPROVED"
    And both held copies were printed, each showing "5.00"
    And the terminal tells the cashier "PRINTER PAPER LOW"

  Scenario: The printer is offline: the receipts wait until it is back online
    Given the printer is offline
    When the cashier starts a purchase of 9.50 EUR
    And the cardholder inserts card "visa-credit" and enters PIN "1234"
    Then the terminal shows "APPROVED"
    And the cash register is told the sale was approved
    And the terminal tells the cashier "PRINTER OFFLINE"
    And no whole receipt was printed yet
    When the printer is back online
    Then both held copies were printed, each showing "9.50"
    And every receipt printed so far was printed once

  Scenario: The printer is jammed before the sale: nothing is lost, the receipts wait for the jam to clear
    Given the printer is jammed
    When the cashier starts a purchase of 4.20 EUR
    And the cardholder inserts card "visa-credit" and enters PIN "1234"
    Then the terminal shows "APPROVED"
    And the terminal tells the cashier "PRINTER JAMMED"
    And no whole receipt was printed yet
    When the jam is cleared
    Then both held copies were printed, each showing "4.20"
    And every receipt printed so far was printed once

  Scenario: A slow printer: the sale does not wait for the paper, the receipts come out whole
    Given the printer prints 2 lines per second
    When the cashier starts a purchase of 3.30 EUR
    And the cardholder inserts card "visa-credit" and enters PIN "1234"
    Then the terminal shows "APPROVED"
    And the cash register is told the sale was approved
    And both held copies were printed, each showing "3.30"

  Scenario: Noise on the printer's line: the terminal skips it and prints
    Given the printer sends noise before its answers
    When the cashier starts a purchase of 2.10 EUR
    And the cardholder inserts card "visa-credit" and enters PIN "1234"
    Then the terminal shows "APPROVED"
    And both held copies were printed, each showing "2.10"
    And every receipt printed so far was printed once
    And the terminal never showed "PRINTER"
