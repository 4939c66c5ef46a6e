"""livechat-bridge: website live chat answered from Matrix or XMPP."""

__version__ = "0.1.0"
