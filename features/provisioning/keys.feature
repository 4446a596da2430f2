@lifecycle @provisioning
Feature: Keys
  The terminal master key comes from the TMS on the terminal's first start, under its
  factory transport key (the TMS hands out the bench file's provisioning.keys and
  master_key; the built-in test key file by default; on a bench without a TMS the terminal
  is loaded with it directly). Session PIN and MAC keys come from the host by key exchange,
  wrapped under that master key, and they survive a power loss.

  @smoke
  Scenario: Session keys from the key exchange protect the first sale
    Given the bench "default"
    And the terminal has signed on
    Then the host answered the key exchange with response code "00"
    And the host's key exchange answer carried the session keys
    When the cashier starts a purchase of 42.50 EUR
    And the cardholder inserts card "visa-credit" and enters PIN "1234"
    Then the terminal shows "APPROVED"
    And the last purchase carried a MAC and an encrypted PIN block
    And the host approved it with response code "00"

  Scenario: The keys survive a power loss
    Given the bench "default"
    And the terminal has signed on
    When the terminal loses power and comes back
    And the cashier starts a purchase of 18.00 EUR
    And the cardholder inserts card "visa-credit" and enters PIN "1234"
    Then the terminal shows "APPROVED"
    And the host approved it with response code "00"
    And the last purchase carried a MAC and an encrypted PIN block
    And the host received exactly 1 key exchange
    And the host received exactly 1 sign-on

  # the bench reloads the embedded terminal's master key; a process gets its key on its
  # command line (poslab terminal --keys FILE --master-key NAME)
  @embedded-terminal
  Scenario: A terminal with the wrong master key cannot unwrap its session keys
    Given the bench "default"
    And the terminal is loaded with master key "tmk" from "fixtures/keys/wrong-master-key.yaml"
    When the cash register registers the terminal
    Then the host answered the key exchange with response code "00"
    And the terminal shows "KEY EXCHANGE FAILED - CALL HELPDESK"
    When the cashier tries a purchase of 20.00 EUR
    Then the terminal shows "KEY EXCHANGE FAILED - CALL HELPDESK"
    And the cash register is told the sale was not charged
    And the host received no "0200"
