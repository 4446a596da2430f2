@lifecycle @maintenance
Feature: Maintenance by the terminal management system
  The terminal is the TMS's client. It calls home on its first start (it holds no master
  key yet), when the operator presses F5, on its parameters' timer and after an update.
  The TMS gives it its identity, its master key (the host still exchanges the session keys
  under it), versioned parameters, signed firmware, and orders log uploads and
  decommissioning. The terminal never bricks: after any interruption it runs the old or
  the new image, and says which.

  @smoke
  Scenario: First provisioning comes from the TMS
    Given the bench "default"
    Then the TMS provisioned the terminal with a master key and parameters version "1"
    When the operator calls the TMS
    Then the terminal reported firmware "1.0.0" and parameters "1" to the TMS
    When the cash register registers the terminal
    Then the host answered the sign-on with response code "00"
    And the host answered the key exchange with response code "00"
    When the cashier starts a purchase of 12.00 EUR
    And the cardholder inserts card "visa-credit" and enters PIN "1234"
    Then the terminal shows "APPROVED"
    And the last purchase carried a MAC and an encrypted PIN block

  Scenario: Key rotation ordered by the TMS; the host exchanges fresh session keys
    Given the bench "default"
    And the terminal has signed on
    When the TMS orders keys-rotate for the terminal
    And the operator calls the TMS
    Then the TMS delivered new session keys
    And the terminal shows "KEYS LOADED"
    When the cashier starts a purchase of 10.00 EUR
    And the cardholder inserts card "visa-credit" and enters PIN "1234"
    Then the terminal shows "APPROVED"
    And the host received exactly 2 key exchanges
    And the last purchase carried a MAC and an encrypted PIN block

  Scenario: A parameter change is on the next receipt
    Given the bench "default"
    And the terminal has signed on
    When the TMS publishes parameters version "2" with merchant_name = "CORNER BAKERY"
    And the operator calls the TMS
    Then the TMS sent parameters version "2"
    When the cashier starts a purchase of 7.80 EUR
    And the cardholder inserts card "visa-credit" and enters PIN "1234"
    Then the terminal shows "APPROVED"
    And the merchant receipt shows "CORNER BAKERY" and "EUR 7.80"
    When the operator calls the TMS
    Then the terminal reported firmware "1.0.0" and parameters "2" to the TMS

  Scenario: CA public keys come with the parameters; a withdrawn key fails offline data authentication
    Given the bench "default"
    And the terminal has signed on
    When the TMS publishes parameters version "3" without the CA key "F1" of RID "A000000003"
    And the operator calls the TMS
    Then the TMS sent parameters version "3"
    When the cashier starts a purchase of 42.50 EUR
    And the cardholder inserts card "visa-credit" and enters PIN "1234"
    Then the terminal shows "APPROVED"
    And offline data authentication by DDA failed and the host saw TVR "0800000000"
    When the cashier starts a purchase of 25.00 EUR
    And the cardholder inserts card "mastercard-debit" and enters PIN "1234"
    Then the terminal shows "APPROVED"
    And offline data authentication by CDA succeeded and the host saw TVR "0000000000"

  Scenario: A CA key past its expiry is not used
    Given the bench "default"
    And the terminal has signed on
    When the TMS publishes parameters version "3" with an expired CA key "F1" of RID "A000000003"
    And the operator calls the TMS
    Then the TMS sent parameters version "3"
    When the cashier starts a purchase of 42.50 EUR
    And the cardholder inserts card "visa-credit" and enters PIN "1234"
    Then the terminal shows "APPROVED"
    And offline data authentication by DDA failed and the host saw TVR "0800000000"

  Scenario: A CA key with a wrong check sum: the whole set is refused, the TMS is told why
    Given the bench "default"
    And the terminal has signed on
    When the TMS publishes parameters version "4" with a wrong check sum on the CA key "F1" of RID "A000000003"
    And the operator calls the TMS
    Then the terminal shows "PARAMETERS REJECTED"
    When the operator calls the TMS
    Then the terminal told the TMS it refused parameters "4" because "check sum"
    And the terminal reported firmware "1.0.0" and parameters "1" to the TMS
    When the cashier starts a purchase of 42.50 EUR
    And the cardholder inserts card "visa-credit" and enters PIN "1234"
    Then the terminal shows "APPROVED"
    And offline data authentication by DDA succeeded and the host saw TVR "0000000000"

  Scenario: Terminal action codes come with the parameters: a denial code for a failed DDA declines offline
    Given the bench "default"
    And the terminal has signed on
    When the TMS publishes parameters version "3" with the terminal action code denial "0800000000" for AID "A000000003"
    And the operator calls the TMS
    Then the TMS sent parameters version "3"
    When the cashier starts a purchase of 30.00 EUR
    And the cardholder inserts card "visa-bad-cert-online" and enters PIN "1234"
    Then the terminal shows "DECLINED BY CARD"
    And the host received no "0200"
    When the cashier starts a purchase of 31.00 EUR
    And the cardholder inserts card "visa-credit" and enters PIN "1234"
    Then the terminal shows "APPROVED"

  @smoke
  Scenario: A firmware update is verified, installed, checked and committed
    Given the bench "default"
    And the terminal has signed on
    When the TMS releases firmware "1.1.0" to the terminal
    And the operator calls the TMS
    Then the terminal shows "SOFTWARE UPDATED TO 1.1.0"
    And the TMS recorded the install of "1.1.0" as "installed"
    And the terminal reported firmware "1.1.0" to the TMS
    When the cashier starts a purchase of 20.00 EUR
    And the cardholder inserts card "visa-credit" and enters PIN "1234"
    Then the terminal shows "APPROVED"

  Scenario: A download cut at 50 % resumes where it stopped
    Given the bench "default"
    And the terminal has signed on
    When the TMS drops the link at 50 % of the download
    And the TMS releases firmware "1.1.0" to the terminal
    And the operator calls the TMS
    Then the terminal shows "DOWNLOADING 40%"
    And the terminal never showed "SOFTWARE UPDATED"
    When the operator calls the TMS
    Then the terminal shows "SOFTWARE UPDATED TO 1.1.0"
    And the download resumed where it stopped
    And the TMS recorded the install of "1.1.0" as "installed"

  Scenario: A power loss in the middle of a download: the old image runs, the download resumes
    Given the bench "default"
    And the terminal has signed on
    And the link from the terminal to the TMS adds 40 ms
    When the TMS releases firmware "1.1.0" to the terminal
    And the operator calls the TMS
    And the terminal loses power when the download reaches 50 %
    And the operator calls the TMS
    Then the terminal reported firmware "1.0.0" to the TMS
    And the terminal shows "SOFTWARE UPDATED TO 1.1.0"
    And the download resumed where it stopped
    And the TMS recorded the install of "1.1.0" as "installed"
    And the terminal reported firmware "1.1.0" to the TMS

  Scenario: A package with a bad signature is refused; the old image keeps running
    Given the bench "default"
    And the terminal has signed on
    When the TMS signs its packages with the wrong key
    And the TMS releases firmware "1.1.0" to the terminal
    And the operator calls the TMS
    Then the terminal shows "UPDATE REJECTED"
    And the TMS recorded the install of "1.1.0" as "rejected-signature"
    And the terminal reported firmware "1.0.0" to the TMS
    And the terminal never showed "SOFTWARE UPDATED"
    When the cashier starts a purchase of 9.00 EUR
    And the cardholder inserts card "visa-credit" and enters PIN "1234"
    Then the terminal shows "APPROVED"

  Scenario: A chunk corrupted on the way fails the image's SHA-256; the old image keeps running
    Given the bench "default"
    And the terminal has signed on
    When the TMS flips the byte at offset 100 of its image
    And the TMS releases firmware "1.1.0" to the terminal
    And the operator calls the TMS
    Then the terminal shows "UPDATE REJECTED"
    And the TMS recorded the install of "1.1.0" as "rejected-digest"
    And the terminal reported firmware "1.0.0" to the TMS
    And the terminal never showed "SOFTWARE UPDATED"
    When the cashier starts a purchase of 11.00 EUR
    And the cardholder inserts card "visa-credit" and enters PIN "1234"
    Then the terminal shows "APPROVED"

  Scenario: A truncated image is refused; the old image keeps running
    Given the bench "default"
    And the terminal has signed on
    When the TMS serves its image cut to 1000 bytes
    And the TMS releases firmware "1.1.0" to the terminal
    And the operator calls the TMS
    Then the terminal shows "UPDATE REJECTED"
    And the TMS recorded the install of "1.1.0" as "rejected-digest"
    And the terminal reported firmware "1.0.0" to the TMS
    And the terminal never showed "SOFTWARE UPDATED"

  Scenario: A package whose manifest names another version than its image is refused
    Given the bench "default"
    And the terminal has signed on
    When the TMS offers its package as version "1.2.0"
    And the TMS releases firmware "1.1.0" to the terminal
    And the operator calls the TMS
    Then the terminal shows "UPDATE REJECTED"
    And the TMS recorded the install of "1.2.0" as "rejected-version"
    And the terminal reported firmware "1.0.0" to the TMS
    And the terminal never showed "SOFTWARE UPDATED"

  Scenario: The TMS is down: the call fails, sales go on, the next call after it is back succeeds
    Given the bench "default"
    And the terminal has signed on
    When the TMS is down
    And the TMS releases firmware "1.1.0" to the terminal
    And the operator calls the TMS
    Then the terminal shows "TMS CALL FAILED"
    When the cashier starts a purchase of 13.00 EUR
    And the cardholder inserts card "visa-credit" and enters PIN "1234"
    Then the terminal shows "APPROVED"
    When the TMS is back
    And the operator calls the TMS
    Then the terminal shows "SOFTWARE UPDATED TO 1.1.0"
    And the TMS recorded the install of "1.1.0" as "installed"

  Scenario: A key delivered with a wrong check value is refused whole; the old keys stay
    Given the bench "default"
    And the terminal has signed on
    When the TMS sends the mac key with a wrong check value
    And the TMS orders keys-rotate for the terminal
    And the operator calls the TMS
    Then the terminal shows "KEY LOAD FAILED - CALL HELPDESK"
    When the cashier starts a purchase of 14.00 EUR
    And the cardholder inserts card "visa-credit" and enters PIN "1234"
    Then the terminal shows "APPROVED"
    And the host received exactly 1 key exchange
    And the last purchase carried a MAC and an encrypted PIN block

  Scenario: A new image that fails its health check is rolled back
    Given the bench "default"
    And the terminal has signed on
    When the TMS releases firmware "1.1.0" whose health check fails to the terminal
    And the operator calls the TMS
    Then the terminal shows "UPDATE FAILED - ROLLING BACK"
    And the TMS recorded the install of "1.1.0" as "rolled-back"
    And the terminal reported firmware "1.0.0" to the TMS
    When the cashier starts a purchase of 15.00 EUR
    And the cardholder inserts card "visa-credit" and enters PIN "1234"
    Then the terminal shows "APPROVED"

  Scenario: The TMS pulls the terminal's logs
    Given the bench "default"
    And the terminal has signed on
    When the TMS orders logs for the terminal
    And the operator calls the TMS
    Then the TMS received the terminal's logs

  # the bench swaps the embedded terminal for a new one, or starts the process node anew
  # with its exchange arguments (scenarios/process.yaml)
  Scenario: Device exchange: the old terminal is decommissioned, a replacement takes its place
    Given the bench "default"
    And the terminal has signed on
    When the TMS orders decommission for the terminal
    And the operator calls the TMS
    Then the terminal shows "TERMINAL DECOMMISSIONED"
    And the TMS retired the terminal after it destroyed its keys
    When the cashier tries a purchase of 20.00 EUR
    Then the terminal shows "TERMINAL DECOMMISSIONED"
    And the cash register is told the sale was not charged
    When a replacement terminal "PT-0002" is provisioned to the same merchant
    Then the TMS knows the terminal as serial "PT-0002"
    When the cash register registers the terminal
    And the cashier starts a purchase of 20.00 EUR
    And the cardholder inserts card "visa-credit" and enters PIN "1234"
    Then the terminal shows "APPROVED"
