//! The channel senders `config.toml` enables, by channel: what the outbox relay hands each
//! claimed row to. A channel without its settings has no sender (its rows wait, and show as
//! `pending` in `/admin/outbox`).

use std::collections::HashMap;
use std::sync::Arc;

use sara_actors::business::Business;
use sara_actors::model::Channel;
use sara_actors::outbound::ChannelSender;

use super::email::EmailNotifier;
use super::twilio_rest::TwilioRest;
use super::whatsapp::GraphClient;
use crate::config::Config;

#[derive(Debug, thiserror::Error)]
pub enum SendersError {
    #[error(transparent)]
    Twilio(#[from] super::twilio_rest::TwilioRestError),
    #[error("whatsapp client: {0}")]
    WhatsApp(#[from] reqwest::Error),
    #[error(transparent)]
    Email(#[from] super::email::EmailError),
}

#[derive(Clone, Default)]
pub struct Senders {
    by_channel: HashMap<Channel, Arc<dyn ChannelSender>>,
}

impl Senders {
    /// SMS with `twilio.account_sid` + `twilio.from` + the auth token, WhatsApp with the access
    /// token + phone number id, email with `email.smtp_url` + `email.from`. Needs a Tokio
    /// runtime (the SMTP pool lives on it).
    /// The senders `config` enables; email composes on `clock` (the app's one clock).
    pub fn from_config(
        config: &Config,
        business: &Business,
        clock: Arc<dyn sara_actors::ports::Clock>,
    ) -> Result<Senders, SendersError> {
        let mut senders = Senders::default();
        if let Some(twilio) = TwilioRest::from_config(config)? {
            senders.insert(Arc::new(twilio));
        }
        let wa = &config.whatsapp;
        if let (Some(token), Some(number)) = (
            wa.access_token.as_ref().map(crate::config::Secret::expose),
            wa.phone_number_id.as_deref(),
        ) {
            let graph = GraphClient::new(&wa.graph_base_url, &wa.graph_version, number, token)?;
            senders.insert(Arc::new(graph));
        }
        if let (Some(url), Some(from)) = (
            config
                .email
                .smtp_url
                .as_ref()
                .map(crate::config::Secret::expose),
            config.email.from.as_deref(),
        ) {
            let email = EmailNotifier::new(
                url,
                from,
                config.email.staff.as_deref(),
                Arc::new(business.clone()),
            )?
            .with_clock(clock);
            senders.insert(Arc::new(email));
        }
        Ok(senders)
    }

    /// Adds (or replaces) the sender of its channel.
    pub fn insert(&mut self, sender: Arc<dyn ChannelSender>) {
        self.by_channel.insert(sender.channel(), sender);
    }

    pub fn get(&self, channel: Channel) -> Option<Arc<dyn ChannelSender>> {
        self.by_channel.get(&channel).cloned()
    }

    /// The channels that can send, in a fixed order.
    pub fn channels(&self) -> Vec<Channel> {
        let mut channels: Vec<Channel> = self.by_channel.keys().copied().collect();
        channels.sort_by_key(|c| c.as_str());
        channels
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn each_channel_has_a_sender_only_when_its_settings_are_complete() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let business = Business::example();
        let mut config = Config::default();
        assert!(
            Senders::from_config(
                &config,
                &business,
                Arc::new(sara_actors::ports::SystemClock)
            )
            .expect("valid")
            .channels()
            .is_empty()
        );
        config.twilio.account_sid = Some("AC0123456789abcdef0123456789abcdef".into());
        config.twilio.from = Some("+15550100000".into());
        config.twilio.auth_token = Some("token".into());
        config.whatsapp.access_token = Some("wa-token".into());
        config.whatsapp.phone_number_id = Some("1234567890".into());
        config.email.smtp_url = Some("smtp://127.0.0.1:2525".into());
        config.email.from = Some("Desk <desk@harbor.example>".into());
        let senders = Senders::from_config(
            &config,
            &business,
            Arc::new(sara_actors::ports::SystemClock),
        )
        .expect("valid");
        assert_eq!(
            senders.channels(),
            [Channel::Email, Channel::Sms, Channel::WhatsApp]
        );
        for channel in senders.channels() {
            assert_eq!(senders.get(channel).map(|s| s.channel()), Some(channel));
        }
        assert!(senders.get(Channel::Voice).is_none());
        config.email.from = Some("not an address".into());
        assert!(
            Senders::from_config(
                &config,
                &business,
                Arc::new(sara_actors::ports::SystemClock)
            )
            .is_err()
        );
    }
}
