@lifecycle @faults @serial
Feature: A bad serial line between the cash register and the terminal
  ZVT over RS-232 frames every message (DLE STX ... DLE ETX CRC) and answers each frame with
  ACK or NAK: a frame the line garbled is refused and sent again. Whatever the line does,
  the cash register never pays twice: when an answer is lost it asks the terminal for its
  last result before anything else, and nobody is charged twice.

  Background:
    Given the bench "default"
    And the terminal has signed on

  @smoke
  Scenario: A bit error in the cash register's command: NAK, sent again, paid once
    Given the cash register's serial line flips a bit in the next frame it sends
    When the cashier starts a purchase of 12.00 EUR
    And the cardholder inserts card "visa-credit" and enters PIN "1234"
    Then the terminal shows "APPROVED"
    And the cash register is told the sale was approved
    And the terminal refused the garbled frame (NAK) and the cash register sent it again
    And the cash register sent the payment once
    And the host approved 1 purchase
    And nobody was charged twice

  Scenario: A BREAK on the line before the command: the terminal skips it, the sale goes through
    Given the cash register sends a BREAK of 250 ms before its next frame
    When the cashier starts a purchase of 9.00 EUR
    And the cardholder inserts card "visa-credit" and enters PIN "1234"
    Then the terminal shows "APPROVED"
    And the cash register is told the sale was approved
    And the line journaled 1 "break" fault
    And the cash register sent the payment once
    And nobody was charged twice

  Scenario: Flow control holds the line: nothing is lost, the sale goes through
    Given flow control stops the cash register's serial line for 800 ms by RTS/CTS
    When the cashier starts a purchase of 7.00 EUR
    And the cardholder inserts card "visa-credit" and enters PIN "1234"
    Then the terminal shows "APPROVED"
    And the cash register is told the sale was approved
    And the line journaled "flow_stall" faults
    And the cash register sent the payment once
    And nobody was charged twice

  Scenario: The ports run at different speeds: no valid answer, the register does not pay twice
    Given the terminal's serial port runs at 4800 baud while the cash register's runs at 9600
    When the cashier tries a purchase of 12.00 EUR
    Then the cash register is told the result is unknown and does not pay again
    And the line journaled "wrong_baud" faults
    And the host received no "0200"
    And nobody was charged twice
    When the cash register's serial line is clean again
    And the cashier starts a purchase of 12.00 EUR
    And the cardholder inserts card "visa-credit" and enters PIN "1234"
    Then the terminal shows "APPROVED"
    And the cash register is told the sale was approved
    And the host approved 1 purchase
    And nobody was charged twice

  # the cash register notices the lost answer only when its T4 (300 s) runs out
  @simulated-time
  Scenario: The cable is pulled and plugged back mid-transaction: the register asks for the last result
    Given the host will answer the next "0200" after 5 seconds
    When the cashier starts a purchase of 15.00 EUR
    And the cardholder inserts card "visa-credit" and enters PIN "1234"
    Then the host received a "0200" with amount 15.00 EUR
    When the cash register's cable is pulled out for 40 seconds
    Then the cash register asked for the last result and recovered the approval
    And the cash register sent the payment once
    And the line journaled "disconnect" faults
    And the host approved 1 purchase
    And nobody was charged twice
    And at close of day the terminal's totals match the host's

  # random noise on every byte: only simulated time draws the same faults run after run
  @simulated-time
  Scenario: A noisy line: no purchase is sent again blindly, nobody pays twice
    Given the cash register's serial line has noise: 1 byte in 100 gets a bit error
    When the cash register tries 3 purchases of 10.00 EUR, each with card "visa-credit" and PIN "1234"
    Then the line journaled "bit_errors" faults
    And every purchase ended approved, declined or unknown, none sent again blindly
    And nobody was charged twice
    And at close of day the terminal's totals match the host's

  # the register's patience (T4, then its questions for the last result) is minutes long,
  # and the terminal waits longer still before it reverses (11 minutes)
  @simulated-time
  Scenario: The register never hears the payment's result: the terminal reverses it, nobody pays
    When the cashier starts a purchase of 11.00 EUR
    And the terminal's answers to the cash register are lost from now on
    And the cardholder inserts card "visa-credit" and enters PIN "1234"
    Then the cash register is told the result is unknown and does not pay again
    And the host received a reversal for the last purchase
    And the host holds that purchase as reversed
    And nobody was charged twice
    When the cash register's serial line is clean again
    Then at close of day the terminal's totals match the host's
