"""The hub's web process: NiceGUI operator dashboard, REST and WebSocket API (`iot-hub web`)."""
