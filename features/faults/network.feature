@lifecycle @faults @network
Feature: A flaky link on the way to the host
  Whatever the network does, nobody is charged twice and the books reconcile at close of day.
  The faults are poslab proxy's toxics on the terminal's link to the host, seeded by the run.

  Background:
    Given the bench "default"
    And the terminal has signed on

  @smoke
  Scenario: A slow link still sells
    Given the link from the terminal to the host adds 800 ms ± 200 ms
    When the cashier starts a purchase of 12.00 EUR
    And the cardholder inserts card "visa-credit" and enters PIN "1234"
    Then the terminal shows "APPROVED"
    And the host approved it with response code "00"

  Scenario: The link is cut after the request: the purchase is reversed once it is back
    Given the link from the terminal to the host is cut after 1 messages
    When the cashier starts a purchase of 10.00 EUR
    And the cardholder inserts card "visa-credit" and enters PIN "1234"
    Then within 60 seconds the terminal shows "NO ANSWER - NOT CHARGED"
    And the cash register is told the sale was not charged
    When the link from the terminal to the host is healthy again
    Then the host receives a reversal for that purchase within 2 minutes
    And nobody was charged twice
    And at close of day the terminal's totals match the host's

  Scenario: A link that drops packets: every purchase ends approved, declined or reversed
    Given the link from the terminal to the host drops 30% of packets and adds 800 ms ± 200 ms
    When 8 purchases of 5.00 EUR are made with card "visa-credit"
    Then every purchase ends approved, declined or reversed
    When the link from the terminal to the host is healthy again
    Then nobody was charged twice
    And at close of day the terminal's totals match the host's

  Scenario: A flapping link: every purchase ends approved, declined or reversed
    Given the link from the terminal to the host flaps: up 1500 ms, down 2500 ms
    When 5 purchases of 5.00 EUR are made with card "visa-credit"
    Then every purchase ends approved, declined or reversed
    When the link from the terminal to the host is healthy again
    Then nobody was charged twice
    And at close of day the terminal's totals match the host's
