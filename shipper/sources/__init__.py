"""Sources: where events enter the shipper (container log files, the Fluent forward protocol)."""
