//! In-memory emulator of the webCRM REST API.
