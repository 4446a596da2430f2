@lifecycle @transactions
Feature: Receipts
  An approved sale prints a merchant and a customer copy; a declined one only the
  customer's. Each shows the date and time, the amount, the auth code of an approval, and
  the card number masked: no receipt ever shows a run of 12 digits or more.

  Background:
    Given the bench "default"
    And the terminal has signed on

  @smoke
  Scenario: Both copies of an approved chip sale
    When the cashier starts a purchase of 42.50 EUR
    And the cardholder inserts card "visa-credit" and enters PIN "1234"
    Then the printer printed 2 receipts
    And the merchant receipt shows "MERCHANT COPY", "EUR 42.50", "APPROVED" and the card number masked as "476173******0010"
    And the customer receipt shows "CUSTOMER COPY", "EUR 42.50", "APPROVED" and the card number masked as "476173******0010"
    And the merchant receipt is dated at the time of the sale
    And the customer receipt is dated at the time of the sale
    And the merchant receipt carries the host's auth code
    And the customer receipt carries the host's auth code
    And no receipt shows a card number in clear
    And no receipt shows 12 digits or more in a row

  Scenario: A swiped card's receipts keep the card number masked
    When the cashier starts a purchase of 18.00 EUR
    And the cardholder swipes card "magstripe-only"
    Then the printer printed 2 receipts
    And the customer receipt shows "411111******1111"
    And the merchant receipt shows "411111******1111"
    And no receipt shows a card number in clear
    And no receipt shows 12 digits or more in a row

  Scenario: A decline prints the customer copy only
    When the cashier starts a purchase of 905.51 EUR
    And the cardholder inserts card "visa-credit" and enters PIN "1234"
    Then the terminal shows "INSUFFICIENT FUNDS"
    And only the customer copy was printed
    And the customer receipt shows "CUSTOMER COPY", "EUR 905.51" and "476173******0010"
    And the customer receipt is dated at the time of the sale
    And the customer receipt does not show "AUTH CODE"
    And no receipt shows a card number in clear
    And no receipt shows 12 digits or more in a row
