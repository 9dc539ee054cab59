//! Placeholder until the OVS driver lands.
