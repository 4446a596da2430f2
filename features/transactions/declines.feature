@lifecycle @transactions
Feature: Declined purchases
  A decline moves no money, tells the cardholder why, and prints only the customer copy.
  The emulated host answers amounts 900.00-999.99 with their last two digits as response
  code, and anything above 10,000.00 with 61.

  Background:
    Given the bench "default"
    And the terminal has signed on

  Scenario Outline: The issuer declines with <code>
    When the cashier starts a purchase of <amount> EUR
    And the cardholder inserts card "visa-credit" and enters PIN "1234"
    Then the terminal shows "<message>"
    And the host answered with response code "<code>"
    And the cash register is told the sale was declined
    And no money moved for this purchase
    And only the customer copy was printed
    And the customer receipt shows "<message>" and "<amount>"

    Examples:
      | amount   | code | message               |
      | 905.51   | 51   | INSUFFICIENT FUNDS    |
      | 900.05   | 05   | DECLINED              |
      | 900.54   | 54   | EXPIRED CARD          |
      | 900.14   | 14   | INVALID CARD          |
      | 900.91   | 91   | ISSUER UNAVAILABLE    |
      | 900.57   | 57   | NOT PERMITTED         |
      | 900.96   | 96   | SYSTEM ERROR          |
      | 10000.01 | 61   | AMOUNT LIMIT EXCEEDED |

  Scenario: A wrong PIN is declined by the issuer
    When the cashier starts a purchase of 10.00 EUR
    And the cardholder inserts card "visa-credit" and enters PIN "9999"
    Then the terminal shows "WRONG PIN"
    And the host answered with response code "55"
    And no money moved for this purchase

  Scenario: The third wrong PIN in a row blocks the PIN, even for the right one after it
    When 3 purchases of 10.00 EUR are tried with card "visa-credit" and PIN "9999"
    Then the host's answers to the purchases were "55", "55" and "75"
    And the terminal shows "PIN TRIES EXCEEDED"
    When 1 purchase of 10.00 EUR is tried with card "visa-credit" and PIN "1234"
    Then the terminal shows "PIN TRIES EXCEEDED"
    And the host's answers to the purchases were "55", "55", "75" and "75"
    And the host approved 0 purchases

  @smoke
  Scenario: An expired card is refused by the terminal without asking the host
    When the cashier starts a purchase of 10.00 EUR
    And the cardholder inserts card "expired"
    Then the terminal shows "EXPIRED CARD"
    And the cash register is told the sale was declined
    And the terminal never showed "ENTER PIN"
    And the host received no "0200"

  Scenario: A card whose application is blocked is refused
    When the cashier starts a purchase of 10.00 EUR
    And the cardholder inserts card "blocked-app"
    Then the terminal shows "CARD BLOCKED"
    And the cash register is told the sale was declined
    And the host received no "0200"
