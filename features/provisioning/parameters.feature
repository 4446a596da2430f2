@lifecycle @provisioning
Feature: Parameters
  The merchant's parameters (the bench file's provisioning.parameters, or set before the
  bench starts) are the TMS's parameter set for the terminal, downloaded on its first start;
  they decide what the receipts say and how long the terminal waits.

  @smoke
  Scenario: The merchant's name, header and footer are on the receipts
    Given the terminal is provisioned with parameter merchant_name = "CORNER BAKERY"
    And the terminal is provisioned with parameter receipt_header = '["OPEN SUNDAYS 8-12"]'
    And the terminal is provisioned with parameter receipt_footer = '["SEE YOU SOON"]'
    And the bench "default"
    And the terminal has signed on
    When the cashier starts a purchase of 7.80 EUR
    And the cardholder inserts card "visa-credit" and enters PIN "1234"
    Then the terminal shows "APPROVED"
    And the merchant receipt shows "CORNER BAKERY", "OPEN SUNDAYS 8-12", "SEE YOU SOON" and "EUR 7.80"
    And the customer receipt shows "CORNER BAKERY", "OPEN SUNDAYS 8-12" and "SEE YOU SOON"

  Scenario Outline: The terminal sells in its provisioned currency
    Given the terminal is provisioned with parameter currency = "<numeric>"
    And the terminal is provisioned with parameter currency_alpha = "<alpha>"
    And the bench "default"
    And the terminal has signed on
    When the cashier starts a purchase of 9.90 <alpha>
    Then the terminal shows "PURCHASE <alpha> 9.90"
    When the cardholder inserts card "visa-credit" and enters PIN "1234"
    Then the terminal shows "APPROVED"
    And the host received the purchase in currency "<numeric>"
    And the merchant receipt shows "<alpha> 9.90"

    Examples:
      | alpha | numeric |
      | CHF   | 756     |
      | GBP   | 826     |

  @simulated-time
  Scenario Outline: The host timeout parameter decides when the terminal gives up
    Given the terminal is provisioned with parameter host_timeout_ms = "<timeout_ms>"
    And the bench "default"
    And the terminal has signed on
    And the host will answer the next "0200" after <delay> seconds
    When the cashier starts a purchase of 15.00 EUR
    And the cardholder inserts card "visa-credit" and enters PIN "1234"
    Then within 2 minutes the terminal shows "NO ANSWER - NOT CHARGED"
    And the terminal gave up waiting for the host after <gives_up> seconds
    And the host receives a reversal for that purchase
    And the cash register is told the sale was not charged

    Examples:
      | timeout_ms | delay | gives_up |
      | 30000      | 40    | 30       |
      | 10000      | 15    | 10       |

  @simulated-time
  Scenario: A patient terminal waits for a slow host
    Given the terminal is provisioned with parameter host_timeout_ms = "60000"
    And the bench "default"
    And the terminal has signed on
    And the host will answer the next "0200" after 40 seconds
    When the cashier starts a purchase of 15.00 EUR
    And the cardholder inserts card "visa-credit" and enters PIN "1234"
    Then within 2 minutes the terminal shows "APPROVED"
    And the host received no "0400"
    And the cash register is told the sale was approved
