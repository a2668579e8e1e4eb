"""The command line: one small module per noun. Nothing else imports this package."""
