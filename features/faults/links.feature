@lifecycle @faults @links
Feature: Faults on every link of the bench, not only the host's
  The cash register, the printer and the card reader are wired through fault links too:
  the same toxics, seeded by the run, every decision journaled.

  Background:
    Given the bench "default"
    And the terminal has signed on

  @smoke
  Scenario: The printer's link is down: the receipts are held and printed when it is back
    Given the "printer" link is down
    When the cashier starts a purchase of 12.00 EUR
    And the cardholder inserts card "visa-credit" and enters PIN "1234"
    Then the terminal shows "APPROVED"
    And the cash register is told the sale was approved
    And no whole receipt was printed yet
    When the "printer" link is healthy again
    And 60 seconds pass
    Then both held copies were printed, each showing "12.00"
    And nobody was charged twice

  Scenario: A slow link to the cash register still sells
    Given the link from the cash register to the terminal adds 400 ms ± 100 ms
    When the cashier starts a purchase of 9.00 EUR
    And the cardholder inserts card "visa-credit" and enters PIN "1234"
    Then the terminal shows "APPROVED"
    And the cash register is told the sale was approved
    And nobody was charged twice

  Scenario: A slow card reader still sells
    Given the link from the terminal to the card reader adds 300 ms
    When the cashier starts a purchase of 8.00 EUR
    And the cardholder inserts card "visa-credit" and enters PIN "1234"
    Then the terminal shows "APPROVED"
    And the host approved it with response code "00"
    And nobody was charged twice

  Scenario: The host link is down for a while, then back: the next sale goes through
    Given the "host" link is down for 20 seconds
    When the cashier starts a purchase of 7.00 EUR
    And the cardholder inserts card "visa-credit" and enters PIN "1234"
    Then within 60 seconds the terminal shows "NOT CHARGED"
    When 30 seconds pass
    And the cashier starts a purchase of 7.50 EUR
    And the cardholder inserts card "visa-credit" and enters PIN "1234"
    Then the terminal shows "APPROVED"
    And nobody was charged twice
    And at close of day the terminal's totals match the host's
