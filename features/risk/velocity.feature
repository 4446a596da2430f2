@lifecycle @risk
Feature: Velocity monitoring
  The host declines the 6th approved purchase with one card within 10 minutes with 59
  (suspected fraud). Declined purchases and refunds do not count; voided purchases do.

  Background:
    Given the bench "default"
    And the terminal has signed on

  @smoke
  Scenario: The sixth purchase with one card in a row is declined as suspected fraud
    When 5 purchases of 10.00 EUR are tried with card "visa-credit" and PIN "1234"
    Then the host approved 5 purchases
    When the cashier starts a purchase of 10.00 EUR
    And the cardholder inserts card "visa-credit" and enters PIN "1234"
    Then the terminal shows "DECLINED - SUSPECTED FRAUD"
    And the host answered with response code "59"
    And no money moved for this purchase
    And the host approved 5 purchases in all

  Scenario: Another card is not affected
    When 5 purchases of 10.00 EUR are tried with card "visa-credit" and PIN "1234"
    And the cashier starts a purchase of 10.00 EUR
    And the cardholder taps card "mastercard-debit"
    Then the terminal shows "APPROVED"
    And the host approved 6 purchases in all

  Scenario: Declined purchases do not count
    When the cashier starts a purchase of 905.51 EUR
    And the cardholder inserts card "visa-credit" and enters PIN "1234"
    Then the terminal shows "INSUFFICIENT FUNDS"
    And the host answered with response code "51"
    When 5 purchases of 10.00 EUR are tried with card "visa-credit" and PIN "1234"
    Then the host approved 5 purchases
    And the host's answers to the purchases were "51", "00", "00", "00", "00" and "00"

  Scenario: Refunds do not count
    When 4 purchases of 10.00 EUR are tried with card "visa-credit" and PIN "1234"
    And the cashier starts a refund of 10.00 EUR
    And the cardholder inserts card "visa-credit"
    Then the terminal shows "APPROVED"
    When the cashier starts a purchase of 10.00 EUR
    And the cardholder inserts card "visa-credit" and enters PIN "1234"
    Then the terminal shows "APPROVED"
    And the host approved 5 purchases

  Scenario: A voided purchase still counts
    When 5 purchases of 10.00 EUR are tried with card "visa-credit" and PIN "1234"
    And the cashier voids the last purchase
    Then the terminal shows "APPROVED"
    When the cashier starts a purchase of 10.00 EUR
    And the cardholder inserts card "visa-credit" and enters PIN "1234"
    Then the terminal shows "DECLINED - SUSPECTED FRAUD"
    And the host answered with response code "59"

  @simulated-time
  Scenario: Ten minutes later the card is accepted again
    When 5 purchases of 10.00 EUR are tried with card "visa-credit" and PIN "1234"
    Then the host approved 5 purchases
    When 601 seconds pass
    And the cashier starts a purchase of 10.00 EUR
    And the cardholder inserts card "visa-credit" and enters PIN "1234"
    Then the terminal shows "APPROVED"
    And the host approved 6 purchases in all
