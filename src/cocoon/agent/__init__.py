"""Host side of the guest agent protocol (docs/guest-protocol.md): framing, channel, process."""
