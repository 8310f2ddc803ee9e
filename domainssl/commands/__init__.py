"""domainssl.commands."""
