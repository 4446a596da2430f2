@lifecycle @maintenance
Feature: Rolling firmware out to a fleet
  A release reaches only the terminals it targets (by TID, by model and the version they
  run), in waves: a pilot first, the rest once the pilot installed it or at a set time,
  and nobody more once a wave failed too often. The fleet's terminals are TMS clients
  beside the terminal under test with the same firmware slots: they download, verify,
  install, run the new image's health check, commit it or roll back, and report how it
  went at their next call.

  Background:
    Given the bench "default"
    And the terminal has signed on

  @smoke
  Scenario: A pilot first; the rest of the fleet and the terminal once the pilot succeeded
    Given the TMS also manages 3 terminals of model "poslab-ref" running firmware "1.0.0"
    When the TMS releases firmware "1.1.0" to model "poslab-ref" on firmware "1.0.0" in waves:
      | size | after_successes |
      | 1    |                 |
      |      | 1               |
    And the fleet calls the TMS
    Then the TMS offered "1.1.0" to terminal 1 of the fleet in their last calls
    And the fleet runs firmware "1.1.0", "1.0.0" and "1.0.0"
    When the fleet calls the TMS
    Then the TMS offered "1.1.0" to terminals 2 and 3 of the fleet in their last calls
    And the fleet runs firmware "1.1.0", "1.1.0" and "1.1.0"
    And the rollout of "1.1.0" put the fleet's terminals in waves 1, 2 and 2
    When the operator calls the TMS
    Then the terminal shows "SOFTWARE UPDATED TO 1.1.0"
    And the TMS recorded the install of "1.1.0" as "installed"

  Scenario: Only the targeted terminals are offered a release: by model and running version, by TID
    Given the TMS also manages 2 terminals of model "poslab-ref" running firmware "1.0.0"
    And the TMS also manages 1 terminal of model "poslab-mini" running firmware "1.0.0"
    And the TMS also manages 1 terminal of model "poslab-ref" running firmware "0.9.0"
    When the TMS releases firmware "1.1.0" to model "poslab-ref" on firmware "1.0.0"
    And the TMS releases firmware "0.9.1" to the fleet's terminal 4
    And the fleet calls the TMS
    Then the TMS offered "1.1.0" to terminals 1 and 2 of the fleet in their last calls
    And the TMS offered "0.9.1" to terminal 4 of the fleet in their last calls
    And the fleet runs firmware "1.1.0", "1.1.0", "1.0.0" and "0.9.1"
    And the rollout of "1.1.0" put the fleet's terminals in waves 1, 1, - and -

  Scenario: A pilot whose new image fails its health check halts the rollout
    Given the TMS also manages 3 terminals of model "poslab-ref" running firmware "1.0.0"
    When the TMS releases firmware "1.1.0" whose health check fails to model "poslab-ref" on firmware "1.0.0" in waves:
      | size | after_successes | max_failures |
      | 1    |                 | 0            |
      |      | 1               |              |
    And the fleet calls the TMS
    Then the TMS offered "1.1.0" to terminal 1 of the fleet in their last calls
    And the fleet runs firmware "1.0.0", "1.0.0" and "1.0.0"
    When the fleet calls the TMS
    Then the TMS halted the rollout of "1.1.0"
    And the TMS offered "1.1.0" to no terminal of the fleet in their last calls
    When the operator calls the TMS
    Then the terminal reported firmware "1.0.0" to the TMS
    And the terminal never showed "SOFTWARE UPDATED"

  # the second wave's hour passes in milliseconds only on simulated time
  @simulated-time
  Scenario: The second wave opens at its hour, whatever the pilot did
    Given the TMS also manages 3 terminals of model "poslab-ref" running firmware "1.0.0"
    When the TMS releases firmware "1.1.0" to model "poslab-ref" on firmware "1.0.0" in waves:
      | size | at |
      | 1    |    |
      |      | 1h |
    And the fleet calls the TMS
    And the fleet calls the TMS
    Then the TMS offered "1.1.0" to no terminal of the fleet in their last calls
    And the fleet runs firmware "1.1.0", "1.0.0" and "1.0.0"
    And the TMS did not halt the rollout of "1.1.0"
    When 3600 seconds pass
    And the fleet calls the TMS
    Then the TMS offered "1.1.0" to terminals 2 and 3 of the fleet in their last calls
    And the fleet runs firmware "1.1.0", "1.1.0" and "1.1.0"
