"""WordPress networks (multisite): subsite addresses, domain checks before a mapping, ACME rate limits."""
