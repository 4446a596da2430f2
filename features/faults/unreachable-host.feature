@lifecycle @faults @network
Feature: The host cannot be reached
  A name that does not resolve or a host that refuses connections: the terminal says so at
  once, charges no one, and sells again as soon as the host is back.

  Scenario Outline: The terminal cannot reach the host: nothing is charged, the next sale goes through
    Given the bench "default"
    And <fault>
    When the cashier starts a purchase of 10.00 EUR
    Then within 60 seconds the terminal shows "HOST UNAVAILABLE"
    And the cash register is told the sale was not charged
    And the host received no "0200"
    When the link from the terminal to the host is healthy again
    And the cashier starts a purchase of 10.00 EUR
    And the cardholder inserts card "visa-credit" and enters PIN "1234"
    Then the terminal shows "APPROVED"
    And nobody was charged twice
    And at close of day the terminal's totals match the host's

    Examples:
      | fault                             |
      | the host's name does not resolve  |
      | the host refuses connections      |
