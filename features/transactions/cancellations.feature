@lifecycle @transactions
Feature: Cancelled purchases
  A purchase the cardholder abandons ends cancelled, and the host never hears of it.

  Background:
    Given the bench "default"
    And the terminal has signed on

  @smoke
  Scenario: The cardholder cancels at the PIN prompt
    When the cashier starts a purchase of 20.00 EUR
    And the cardholder inserts card "visa-credit"
    Then the terminal shows "ENTER PIN"
    When the cardholder cancels
    Then the terminal shows "CANCELLED"
    And the cash register is told the sale was cancelled
    And the host received no "0200"

  Scenario: The cardholder cancels before presenting a card
    When the cashier starts a purchase of 20.00 EUR
    And the cardholder cancels
    Then the terminal shows "CANCELLED"
    And the cash register is told the sale was cancelled
    And the host received no "0200"

  @simulated-time
  Scenario: No card within a minute cancels the sale
    When the cashier starts a purchase of 20.00 EUR
    And 59 seconds pass
    Then the terminal still shows "INSERT, TAP OR SWIPE CARD"
    And within 2 seconds the terminal shows "NO CARD - CANCELLED"
    And the cash register is told the sale was cancelled
    And the host received no "0200"
