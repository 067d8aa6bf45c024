"""Everything that touches disk or the network: atomic datasets, media, content hashes, the result cache, the one OpenAI-compatible client and its rate limit."""
