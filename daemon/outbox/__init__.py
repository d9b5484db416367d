"""The outbox: letters rendered, paced, sent once through a transport, bounces read back."""
