@lifecycle @go-live
Feature: Go-live
  Going live is sign-on, key exchange, then the first live transaction, in that order. A
  terminal that was never registered goes on line by itself at its first sale; a host that
  is down at go-live charges no one.

  @smoke
  Scenario: Sign-on and key exchange come before the first live sale
    Given the bench "default"
    And merchant "000000000000001" is provisioned with terminal "00000001"
    And the terminal has signed on
    When the cashier starts a purchase of 30.00 EUR
    And the cardholder inserts card "visa-credit" and enters PIN "1234"
    Then the terminal shows "APPROVED"
    And the host saw the sign-on, the key exchange and the first purchase in that order
    And the host approved it with response code "00"
    And the printer printed 2 receipts

  Scenario: A terminal never signed on signs on by itself at its first sale
    Given the bench "default"
    When the cashier starts a purchase of 8.40 EUR
    Then the terminal shows "INSERT, TAP OR SWIPE CARD"
    When the cardholder inserts card "visa-credit" and enters PIN "1234"
    Then the terminal shows "APPROVED"
    And the host saw the sign-on, the key exchange and the first purchase in that order
    And the host received exactly 1 sign-on
    And the host received exactly 1 key exchange
    And the cash register is told the sale was approved

  Scenario Outline: The host is down at go-live: nothing is charged
    Given the bench "default"
    And the host will <fault> the next "0800"
    When the cashier starts a purchase of 19.99 EUR
    Then within 2 minutes the terminal shows "HOST UNAVAILABLE"
    And the cash register is told the sale was not charged
    And the host received no "0200"
    And no money moved for this purchase
    And the printer printed 0 receipts

    Examples: the host closes the connection
      | fault                   |
      | close the connection on |

    @simulated-time
    Examples: the host does not answer (the terminal waits out its 30 s timeout)
      | fault                   |
      | not answer              |

  @simulated-time
  Scenario: Once the host is back the terminal goes live at the next sale
    Given the bench "default"
    And the host will not answer the next "0800"
    When the cashier starts a purchase of 19.99 EUR
    Then within 2 minutes the terminal shows "HOST UNAVAILABLE"
    When the cashier starts a purchase of 19.99 EUR
    And the cardholder inserts card "visa-credit" and enters PIN "1234"
    Then the terminal shows "APPROVED"
    And the host received exactly 2 sign-ons
    And the host received exactly 1 key exchange
