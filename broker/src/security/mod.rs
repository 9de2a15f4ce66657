//! Client security on the Kafka listeners: each listener's security protocol (Kafka's
//! `listener.security.protocol.map`), SASL PLAIN, SCRAM and OAUTHBEARER ([`scram`], [`oauthbearer`], [`sasl`]), and the ACL
//! authorizer ([`acl`]). TLS is `crate::tls`. Inter-node authentication is `crate::auth`.

pub mod acl;
pub mod mapping;
pub mod oauthbearer;
pub mod principal;
pub mod sasl;
pub mod scram;

/// A listener's security protocol, Kafka's names: the client's type, one definition.
pub use client::security::SecurityProtocol;

/// The listener a connection came in on: its name (what Metadata's endpoints are chosen by)
/// and protocol.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListenerInfo {
    /// The listener's name (`PLAINTEXT`, `SASL_SSL`, `CLIENTS`, ...).
    pub name: String,
    /// Its security protocol.
    pub protocol: SecurityProtocol,
}

/// Who a connection is, for the authorizer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Identity {
    /// A cluster member that proved the cluster secret (rill's inter-node mechanism): allowed
    /// everything, as Kafka's brokers are super users of each other.
    Broker(i32),
    /// A SASL user, or a TLS client by its certificate's subject: principal `User:name`.
    User(String),
    /// Nobody authenticated (PLAINTEXT and SSL listeners): `User:ANONYMOUS`.
    Anonymous,
}

impl Identity {
    /// Kafka's principal string.
    pub fn principal(&self) -> String {
        match self {
            Identity::Broker(id) => format!("User:rill-broker-{id}"),
            Identity::User(name) => format!("User:{name}"),
            Identity::Anonymous => "User:ANONYMOUS".to_string(),
        }
    }
}
