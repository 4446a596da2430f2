@lifecycle @training
Feature: Training mode
  Operators practise in training mode (F4): sales are approved on the terminal but never
  reach the acquirer, every receipt says TRAINING, and none of it counts at settlement.

  @smoke
  Scenario: A training purchase never reaches the host
    Given the bench "default"
    When the operator switches training mode on
    And the cashier starts a purchase of 42.50 EUR
    And the cardholder inserts card "visa-credit" and enters PIN "1234"
    Then the terminal shows "APPROVED - TRAINING"
    And the cash register is told the sale was approved
    And the host received no "0200"
    And every receipt says "TRAINING"

  Scenario: Switching training off sends the next purchase to the host
    Given the bench "default"
    When the operator switches training mode on
    And the cashier starts a purchase of 11.00 EUR
    And the cardholder inserts card "visa-credit" and enters PIN "1234"
    Then the terminal shows "APPROVED - TRAINING"
    When the operator switches training mode off
    And the cashier starts a purchase of 22.00 EUR
    And the cardholder inserts card "visa-credit" and enters PIN "1234"
    Then the terminal shows "APPROVED"
    And the host received a "0200" with amount 22.00 EUR and an encrypted PIN block
    And the host approved it with response code "00"
    And the customer receipt shows "22.00"

  Scenario: Training sales are not in the settlement totals
    Given the bench "default"
    When the operator switches training mode on
    And the cashier starts a purchase of 42.50 EUR
    And the cardholder inserts card "visa-credit" and enters PIN "1234"
    Then the terminal shows "APPROVED - TRAINING"
    When the operator switches training mode off
    Then at close of day the terminal's totals match the host's
    And the host's settlement counted 0 debits totalling 0.00 EUR
    And the host received no "0320"

  Scenario: Training and live sales in one batch: only the live one settles
    Given the bench "default"
    When the operator switches training mode on
    And the cashier starts a purchase of 42.50 EUR
    And the cardholder inserts card "visa-credit" and enters PIN "1234"
    Then the terminal shows "APPROVED - TRAINING"
    When the operator switches training mode off
    And the cashier starts a purchase of 10.00 EUR
    And the cardholder inserts card "visa-credit" and enters PIN "1234"
    Then the terminal shows "APPROVED"
    And at close of day the terminal's totals match the host's
    And the host's settlement counted 1 debit totalling 10.00 EUR

  Scenario: Training mode survives a power loss
    Given the bench "default"
    When the operator switches training mode on
    And the terminal loses power and comes back
    Then the terminal shows "TRAINING MODE - READY"
    When the cashier starts a purchase of 5.00 EUR
    And the cardholder inserts card "visa-credit" and enters PIN "1234"
    Then the terminal shows "APPROVED - TRAINING"
    And the host received no "0200"
