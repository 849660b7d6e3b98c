"""The Judge0- and Piston-compatible HTTP gateway: callbacks, tenants, rate limits."""
