@lifecycle @faults @messages
Feature: Faults that know the protocol: lost, late, doubled and spoilt messages
  The fault sits on the wire and reads the messages as the codecs do: the host's ISO 8583
  answers, the cash register's ZVT commands and the terminal's answers, the card's APDUs.
  Whatever it does to one message, the terminal tells the cashier the truth, reverses what
  it could not confirm, charges nobody twice, and its totals reconcile with the host's.

  Background:
    Given the bench "default"
    And the terminal has signed on

  @smoke
  Scenario: The host's approval is lost on the way: the purchase is reversed
    Given the host's 0210 is dropped
    When the cashier starts a purchase of 10.00 EUR
    And the cardholder inserts card "visa-credit" and enters PIN "1234"
    Then within 60 seconds the terminal shows "NO ANSWER - NOT CHARGED"
    And the cash register is told the sale was not charged
    And the host receives a reversal for that purchase within 2 minutes
    And the host holds that purchase as reversed
    And the "host" link journaled 1 "drop" fault decision
    And nobody was charged twice
    And at close of day the terminal's totals match the host's

  # the field timers matter here (the terminal's host timeout, the answer 10 s after it)
  @simulated-time
  Scenario: The approval arrives after the terminal's timeout: it is not honoured
    Given the host's 0210 arrives after the terminal's timeout
    When the cashier starts a purchase of 25.00 EUR
    And the cardholder inserts card "visa-credit" and enters PIN "1234"
    Then within 60 seconds the terminal shows "NO ANSWER - NOT CHARGED"
    And the cash register is told the sale was not charged
    And the host receives a reversal for that purchase within 2 minutes
    And the terminal never showed "APPROVED"
    And the host holds that purchase as reversed
    And the "host" link journaled 1 "delay" fault decision
    And nobody was charged twice
    And at close of day the terminal's totals match the host's

  Scenario: An approval with a wrong MAC is not trusted: the purchase is reversed
    Given the host's 0210 carries a wrong MAC
    When the cashier starts a purchase of 11.00 EUR
    And the cardholder inserts card "visa-credit" and enters PIN "1234"
    Then within 60 seconds the terminal shows "NOT CHARGED"
    And the terminal never showed "APPROVED"
    And the host receives a reversal for that purchase within 2 minutes
    And the "host" link journaled 1 "wrong_mac" fault decision
    And nobody was charged twice
    And at close of day the terminal's totals match the host's

  Scenario: The host's approval arrives twice: the copy is ignored
    Given the host's 0210 is duplicated
    When the cashier starts a purchase of 12.00 EUR
    And the cardholder inserts card "visa-credit" and enters PIN "1234"
    Then the terminal shows "APPROVED"
    And the cash register is told the sale was approved
    When the cashier starts a purchase of 13.00 EUR
    And the cardholder inserts card "visa-credit" and enters PIN "1234"
    Then the terminal shows "APPROVED"
    And the host approved 2 purchases
    And the "host" link journaled 1 "duplicate" fault decision
    And nobody was charged twice
    And at close of day the terminal's totals match the host's

  Scenario: An unsolicited network message before the approval is passed over
    Given the host's 0210 is preceded by an unsolicited 0800
    When the cashier starts a purchase of 14.00 EUR
    And the cardholder inserts card "visa-credit" and enters PIN "1234"
    Then the terminal shows "APPROVED"
    And the cash register is told the sale was approved
    And the "host" link journaled 1 "unsolicited" fault decision
    And nobody was charged twice
    And at close of day the terminal's totals match the host's

  Scenario: A garbled response code is a bad frame: the purchase is reversed
    Given the host's 0210 has DE 39 corrupted
    When the cashier starts a purchase of 15.00 EUR
    And the cardholder inserts card "visa-credit" and enters PIN "1234"
    Then within 60 seconds the terminal shows "NOT CHARGED"
    And the terminal never showed "APPROVED"
    And the host receives a reversal for that purchase within 2 minutes
    And the "host" link journaled 1 "corrupt" fault decision
    And nobody was charged twice
    And at close of day the terminal's totals match the host's

  Scenario: The terminal's status information reaches the register late: one sale, one charge
    Given the terminal's ZVT 04 0F (status information) is delayed by 2 seconds
    When the cashier starts a purchase of 16.00 EUR
    And the cardholder inserts card "visa-credit" and enters PIN "1234"
    Then the terminal shows "APPROVED"
    And the cash register is told the sale was approved
    And the "ecr" link journaled 1 "delay" fault decision
    And the host approved 1 purchase
    And nobody was charged twice
    And at close of day the terminal's totals match the host's

  Scenario: The card refuses GENERATE AC (6A82): a clear refusal, nobody charged
    Given the card answers GENERATE AC with status 6A82
    When the cashier starts a purchase of 17.00 EUR
    And the cardholder inserts card "visa-credit" and enters PIN "1234"
    Then the terminal shows "DECLINED BY CARD"
    And the terminal never showed "APPROVED"
    And the "reader" link journaled 1 "status_word" fault decision
    And no money moved for this purchase
    And nobody was charged twice

  Scenario: The card is pulled out between two commands: refused, nobody charged
    Given the card is removed before GENERATE AC
    When the cashier starts a purchase of 18.00 EUR
    And the cardholder inserts card "visa-credit" and enters PIN "1234"
    Then the terminal shows "DECLINED BY CARD"
    And the terminal never showed "APPROVED"
    And the "reader" link journaled 1 "remove_card" fault decision
    And no money moved for this purchase
    And nobody was charged twice
