@lifecycle @faults @system-failure
Feature: The terminal hangs in the middle of a sale
  A terminal whose software hangs answers nobody: not the register, not the host. The
  watchdog takes the silence for a hang, kills it and starts it again; the terminal then
  reverses the request it had sent, from what it wrote ahead to its store, and sells again.
  On a spawned terminal the watchdog is its supervisor (the bench file's `watchdog` and
  `restart`: SIGSTOP silences its heartbeat); on the embedded one it is the bench's own.

  Background:
    Given the bench "default"
    And the terminal has signed on

  Scenario: The terminal hangs after sending the purchase: restarted, reversed, nobody charged
    Given the host will answer the next "0200" after 20 seconds
    When the cashier starts a purchase of 15.00 EUR
    And the cardholder inserts card "visa-credit" and enters PIN "1234"
    Then the host received a "0200" with amount 15.00 EUR
    When the terminal hangs
    Then the watchdog restarts the terminal within 2 minutes
    And the host receives a reversal for that purchase within 2 minutes
    And the host holds that purchase as reversed
    And nobody was charged twice

  Scenario: After the watchdog's restart the terminal sells again and the day reconciles
    When the terminal hangs
    Then the watchdog restarts the terminal within 2 minutes
    When the cashier starts a purchase of 8.40 EUR
    And the cardholder inserts card "visa-credit" and enters PIN "1234"
    Then the terminal shows "APPROVED"
    And the cash register is told the sale was approved
    And nobody was charged twice
    And at close of day the terminal's totals match the host's
