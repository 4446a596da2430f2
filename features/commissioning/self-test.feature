@lifecycle @commissioning
Feature: Commissioning self test
  At installation the operator runs the self test (F3): printer, keypad, card reader and
  the host link (an echo, 0800 301) are checked, and a test page shows each result. A
  failed check is named on the display and on the page.

  @smoke
  Scenario: Every check passes and the test page says so
    Given the bench "default"
    When the operator runs the self test
    Then the terminal shows "SELF TEST PASSED"
    And the self test reports "PRINTER" OK
    And the self test reports "KEYPAD" OK
    And the self test reports "CARD READER" OK
    And the self test reports "HOST LINK" OK
    And the host answered the echo test with response code "00"
    And a test page is printed with every check OK

  Scenario: With the printer out of paper the printer check fails and the page waits
    Given the bench "default"
    And the printer is out of paper
    When the operator runs the self test
    Then the terminal shows "SELF TEST FAILED: PRINTER"
    And the self test reports "PRINTER" FAILED
    And the self test reports "KEYPAD" OK
    And the self test reports "HOST LINK" OK
    And the test page is held
    When paper is loaded
    Then the printed receipt shows "TEST PAGE"
    And the self test reports "PRINTER" FAILED

  Scenario: A broken keypad fails the keypad check
    Given the bench "default"
    And the keypad is broken
    When the operator runs the self test
    Then the terminal shows "SELF TEST FAILED: KEYPAD"
    And the self test reports "KEYPAD" FAILED
    And the self test reports "PRINTER" OK
    And the self test reports "HOST LINK" OK

  @simulated-time
  Scenario: A silent host fails the host link check
    Given the bench "default"
    And the host will not answer the next "0800"
    When the operator runs the self test
    Then within 2 minutes the terminal shows "SELF TEST FAILED: HOST LINK"
    And the self test reports "HOST LINK" FAILED
    And the self test reports "PRINTER" OK
    And the self test reports "KEYPAD" OK
    And the host received exactly 1 echo test
