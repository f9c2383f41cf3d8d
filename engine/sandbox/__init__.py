"""The sandbox: an embedded TDengine 3.3 peer speaking the taosAdapter WebSocket protocol."""
