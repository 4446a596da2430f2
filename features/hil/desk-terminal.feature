@hil
Feature: A real terminal on the desk
  Run against scenarios/examples/desk-terminal.yaml: poslab plays the host, the printer and
  the cash register; a person presents the test card to the terminal's own reader and types
  its PIN on the terminal's own PIN pad. Left out of runs without --tags.

  Scenario: A purchase on the real terminal, card presented by hand
    Given the bench "desk-terminal"
    When the cashier starts a purchase of 10.00 EUR at a real terminal
    Then the host received a "0200" with amount 10.00 EUR
    And the cash register is told the sale was approved
