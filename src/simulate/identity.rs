//! The principals of a simulated organisation and how CloudTrail writes them in `userIdentity`.

use rand::Rng;
use serde_json::{json, Value};

/// Who made a call.
#[derive(Debug, Clone)]
pub enum Principal {
    /// An IAM user, with a long-term (`AKIA`) or console-session (`ASIA`) key.
    User { name: String, key: String },
    /// A session of an assumed role.
    Role {
        role: String,
        session: String,
        key: String,
        /// EC2 instance credentials carry `ec2RoleDelivery`.
        ec2: bool,
        /// Lambda / EC2 credentials name what they were issued to (`inScopeOf`).
        issued_to: Option<(String, String)>,
        mfa: bool,
    },
    /// An AWS service acting on the account's behalf.
    Service { name: String },
    /// The account's root user.
    Root,
}

/// A principal in an account, with where its calls come from.
#[derive(Debug, Clone)]
pub struct Actor {
    pub account: String,
    pub principal: Principal,
    pub source_ip: String,
    pub user_agent: String,
    /// Calls come through this VPC endpoint.
    pub vpc_endpoint: Option<String>,
    /// Calls come from the console (browser) with MFA.
    pub console: bool,
}

impl Actor {
    /// An IAM user calling with `key` (AKIA... long-term, ASIA... a console session's).
    pub fn user(
        account: &str,
        name: String,
        key: String,
        source_ip: String,
        user_agent: String,
        console: bool,
    ) -> Self {
        Actor {
            account: account.to_string(),
            principal: Principal::User { name, key },
            source_ip,
            user_agent,
            vpc_endpoint: None,
            console,
        }
    }

    /// The `userIdentity` object.
    pub fn identity(&self, at: &str) -> Value {
        let account = &self.account;
        match &self.principal {
            Principal::User { name, key } => {
                let mut v = json!({
                    "type": "IAMUser",
                    "principalId": principal_id("AIDA", account, name),
                    "arn": format!("arn:aws:iam::{account}:user/{name}"),
                    "accountId": account,
                    "accessKeyId": key,
                    "userName": name,
                });
                if self.console {
                    v["sessionContext"] = json!({
                        "sessionIssuer": {},
                        "webIdFederationData": {},
                        "attributes": {"creationDate": at, "mfaAuthenticated": "true"}
                    });
                }
                v
            }
            Principal::Role {
                role,
                session,
                key,
                ec2,
                issued_to,
                mfa,
            } => {
                let role_id = principal_id("AROA", account, role);
                let mut context = json!({
                    "sessionIssuer": {
                        "type": "Role",
                        "principalId": role_id,
                        "arn": format!("arn:aws:iam::{account}:role/{role}"),
                        "accountId": account,
                        "userName": role.rsplit('/').next().unwrap_or(role),
                    },
                    "webIdFederationData": {},
                    "attributes": {"creationDate": at, "mfaAuthenticated": if *mfa { "true" } else { "false" }}
                });
                if *ec2 {
                    context["ec2RoleDelivery"] = json!("2.0");
                }
                let mut v = json!({
                    "type": "AssumedRole",
                    "principalId": format!("{role_id}:{session}"),
                    "arn": format!("arn:aws:sts::{account}:assumed-role/{}/{session}", role.rsplit('/').next().unwrap_or(role)),
                    "accountId": account,
                    "accessKeyId": key,
                    "sessionContext": context,
                });
                if let Some((issuer_type, to)) = issued_to {
                    v["inScopeOf"] = json!({"issuerType": issuer_type, "credentialsIssuedTo": to});
                }
                v
            }
            Principal::Service { name } => json!({"type": "AWSService", "invokedBy": name}),
            Principal::Root => json!({
                "type": "Root",
                "principalId": account,
                "arn": format!("arn:aws:iam::{account}:root"),
                "accountId": account,
                "accessKeyId": "",
            }),
        }
    }
}

/// A stable, realistic-looking principal id (`AIDA…`, `AROA…`) for a name.
pub fn principal_id(prefix: &str, account: &str, name: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in account.bytes().chain(name.bytes()) {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    let mut out = String::from(prefix);
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    for _ in 0..17 {
        out.push(ALPHABET[(h % 32) as usize] as char);
        h = h.rotate_right(5).wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ (h >> 29);
    }
    out
}

/// A random access key id with the given prefix (`AKIA` long-term, `ASIA` temporary).
pub fn access_key<R: Rng + ?Sized>(rng: &mut R, prefix: &str) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::from(prefix);
    for _ in 0..16 {
        out.push(ALPHABET[rng.random_range(0..32)] as char);
    }
    out
}

/// A random version-4 UUID, as CloudTrail writes event and request ids.
pub fn uuid<R: Rng + ?Sized>(rng: &mut R) -> String {
    let a: u128 = rng.random();
    let a = (a & !(0xf << 76) | (0x4 << 76)) & !(0x3 << 62) | (0x2 << 62);
    let h = format!("{a:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn ids_look_like_aws_ids() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let id = uuid(&mut rng);
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "4");
        let key = access_key(&mut rng, "AKIA");
        assert_eq!(key.len(), 20);
        assert_eq!(
            principal_id("AIDA", "1", "bob"),
            principal_id("AIDA", "1", "bob")
        );
        assert_ne!(
            principal_id("AIDA", "1", "bob"),
            principal_id("AIDA", "1", "alice")
        );
    }
}
