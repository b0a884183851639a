"""Order management: state machine driver, running sum of fills, dirty flags, reconciliation, spam guards."""
