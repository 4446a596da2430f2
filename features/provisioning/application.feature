@lifecycle @provisioning
Feature: Application and provisioning
  A merchant and its terminals exist at the host only once provisioned. A provisioned
  terminal goes live; a terminal id or merchant id the host does not know is refused with
  03, and the terminal says so plainly and sells nothing.

  @smoke
  Scenario Outline: A provisioned terminal goes live
    Given the terminal is provisioned as terminal "<tid>" of merchant "000000000000001"
    And the bench "default"
    When the cash register registers the terminal
    Then the host answered the sign-on with response code "00"
    And the host answered the key exchange with response code "00"
    When the cashier starts a purchase of 12.00 EUR
    And the cardholder inserts card "visa-credit" and enters PIN "1234"
    Then the terminal shows "APPROVED"
    And the host received a "0200" with amount 12.00 EUR

    Examples: the merchant's terminal range 00000001..00000010
      | tid      |
      | 00000001 |
      | 00000010 |

  Scenario Outline: An unknown terminal or merchant is refused and sells nothing
    Given the terminal is provisioned as terminal "<tid>" of merchant "<mid>"
    And the bench "default"
    When the cash register registers the terminal
    Then the host refused the sign-on with response code "03"
    And the terminal shows "TERMINAL NOT PROVISIONED - CALL HELPDESK"
    And the host received exactly 0 key exchanges
    When the cashier tries a purchase of 25.00 EUR
    Then the terminal shows "TERMINAL NOT PROVISIONED - CALL HELPDESK"
    And the cash register is told the sale was not charged
    And the host received no "0200"
    And the printer printed 0 receipts

    Examples:
      | case                                   | tid      | mid             |
      | unknown terminal id                    | 99999999 | 000000000000001 |
      | just outside the merchant's range      | 00000011 | 000000000000001 |
      | unknown merchant id                    | 00000001 | 999999999999999 |
