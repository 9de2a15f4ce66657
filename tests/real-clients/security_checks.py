"""Client security with confluent-kafka (librdkafka 2.x) against a `rill cluster up --secure
--sasl-plaintext --oauthbearer unsecured` cluster.

Usage: security_checks.py DIR (the cluster directory: client.properties, ca.pem, cluster.json).

- SASL_SSL with SCRAM-SHA-256 as the generated super user: idempotent acks=all produce and a
  consumer group read everything back once;
- a wrong password is refused (an authentication error, nothing served);
- AlterUserScramCredentials creates a user, DescribeUserScramCredentials lists it;
- that user over SASL_PLAINTEXT with PLAIN: a topic without an ACL answers
  TOPIC_AUTHORIZATION_FAILED to produce and to consume; CreateAcls (prefixed WRITE and READ,
  group READ) lets it produce and consume; DescribeAcls shows the bindings, DeleteAcls removes
  them and the refusal comes back;
- OAUTHBEARER (the cluster runs `--oauthbearer unsecured`): librdkafka's unsecured JWT for
  principal admin produces and consumes over SASL_SSL and SASL_PLAINTEXT; a principal without
  ACLs authenticates and is refused TOPIC_AUTHORIZATION_FAILED;
- mutual TLS: with the generated client certificate (User:CN=admin, a super user) produce and
  consume over SSL; without a certificate, refused;
- an anonymous client on the PLAINTEXT listener (the authorizer is on) may not produce;
- nothing crashed: every node process is alive at the end.
"""

import os
import sys
import time
import uuid

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer
from confluent_kafka.admin import (
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    AdminClient,
    NewTopic,
    ResourcePatternType,
    ResourceType,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialUpsertion,
)

from common import cluster_file, finish, log, verdict

directory = sys.argv[1]
settings = {}
with open(f"{directory}/client.properties", encoding="utf-8") as handle:
    for line in handle:
        key, _, value = line.strip().partition("=")
        if key:
            settings[key] = value
sasl_ssl = settings["bootstrap.servers"]
# Node N listens on base+10N (PLAINTEXT), +3 (SASL_SSL), +4 (SASL_PLAINTEXT), +5 (SSL, mTLS).
sasl_plaintext = ",".join(
    f"{host}:{int(port) + 1}" for host, port in (a.rsplit(":", 1) for a in sasl_ssl.split(","))
)
mtls = ",".join(
    f"{host}:{int(port) + 2}" for host, port in (a.rsplit(":", 1) for a in sasl_ssl.split(","))
)
plaintext = ",".join(cluster_file(directory)["bootstrap"])
run = uuid.uuid4().hex[:8]


def admin_config(**extra):
    config = dict(settings)
    config.update(extra)
    return config


def produce(config, topic, count, timeout_s=30):
    """Produces `count` records; returns (delivered, first error code or None)."""
    delivered, errors = [], []

    def report(error, message):
        if error is None:
            delivered.append(message.offset())
        else:
            errors.append(error)

    producer = Producer(config)
    for i in range(count):
        producer.produce(topic, key=f"k{i}", value=f"v{i}", on_delivery=report)
        producer.poll(0)
    producer.flush(timeout_s)
    return len(delivered), (errors[0].code() if errors else None)


def consume(config, topic, want, timeout_s=30):
    """Reads up to `want` records from the beginning; returns (values, first error code)."""
    consumer = Consumer(
        dict(config, **{"auto.offset.reset": "earliest", "enable.auto.commit": False})
    )
    consumer.subscribe([topic])
    values, error = [], None
    deadline = time.monotonic() + timeout_s
    try:
        while len(values) < want and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None:
                continue
            if message.error():
                error = message.error().code()
                if error in (
                    KafkaError.TOPIC_AUTHORIZATION_FAILED,
                    KafkaError.GROUP_AUTHORIZATION_FAILED,
                ):
                    break
                continue
            values.append(message.value().decode())
    finally:
        consumer.close()
    return values, error


# --- SASL_SSL + SCRAM-SHA-256 as the super user ------------------------------------------------
admin = AdminClient(admin_config())
topic = f"sec-ssl-{run}"
for future in admin.create_topics([NewTopic(topic, 3, 3)]).values():
    future.result(30)
count = 500
t0 = time.monotonic()
sent, error = produce(
    admin_config(**{"enable.idempotence": True, "acks": "all"}), topic, count
)
values, consume_error = consume(admin_config(**{"group.id": f"sec-group-{run}"}), topic, count)
verdict(
    "SASL_SSL SCRAM-SHA-256 produce and consume",
    sent == count and sorted(values) == sorted(f"v{i}" for i in range(count)),
    f"{sent}/{count} acknowledged (idempotent, acks=all), {len(values)} read back in a group, "
    f"{time.monotonic() - t0:.1f} s (errors: {error}, {consume_error})",
)

# --- a wrong password --------------------------------------------------------------------------
auth_errors = []
wrong = Producer(
    admin_config(
        **{
            "sasl.password": "not-the-password",
            "error_cb": auth_errors.append,
            "log_level": 0,
        }
    )
)
refused = False
try:
    wrong.list_topics(timeout=8)
except KafkaException:
    refused = True
deadline = time.monotonic() + 10
while time.monotonic() < deadline and not any(
    e.code() == KafkaError._AUTHENTICATION for e in auth_errors
):
    wrong.poll(0.5)
del wrong
codes = {e.code() for e in auth_errors}
verdict(
    "a wrong SCRAM password is refused",
    refused and KafkaError._AUTHENTICATION in codes,
    f"metadata refused, errors {sorted(KafkaError(c).name() for c in codes)}",
)

# --- SCRAM credentials managed with the admin API ---------------------------------------------
user, password = f"alice-{run}", f"pw-{run}"
upsert = UserScramCredentialUpsertion(
    user, ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256, 4096), password.encode()
)
altered = admin.alter_user_scram_credentials([upsert])
altered[user].result(30)
described = admin.describe_user_scram_credentials([user])[user].result(30)
infos = [(i.mechanism, i.iterations) for i in described.scram_credential_infos]
verdict(
    "AlterUserScramCredentials then DescribeUserScramCredentials",
    infos == [(ScramMechanism.SCRAM_SHA_256, 4096)],
    f"{user}: {infos}",
)

# --- the new user over SASL_PLAINTEXT with PLAIN: ACLs ------------------------------------------
plain = {
    "bootstrap.servers": sasl_plaintext,
    "security.protocol": "SASL_PLAINTEXT",
    "sasl.mechanisms": "PLAIN",
    "sasl.username": user,
    "sasl.password": password,
}
closed = f"sec-closed-{run}"
for future in admin.create_topics([NewTopic(closed, 1, 3)]).values():
    future.result(30)
sent, error = produce(dict(plain, **{"message.timeout.ms": 10000}), closed, 5, timeout_s=15)
verdict(
    "a topic without an ACL: produce refused",
    sent == 0 and error == KafkaError.TOPIC_AUTHORIZATION_FAILED,
    f"{sent} delivered, error {KafkaError(error).name() if error else None}",
)
principal = f"User:{user}"
group_binding = AclBinding(ResourceType.GROUP, f"alice-{run}", ResourcePatternType.LITERAL,
                           principal, "*", AclOperation.READ, AclPermissionType.ALLOW)
for future in admin.create_acls([group_binding]).values():
    future.result(30)
values, error = consume(dict(plain, **{"group.id": f"alice-{run}"}), topic, 1, timeout_s=15)
verdict(
    "a topic without an ACL: consume refused (the group allowed)",
    not values and error == KafkaError.TOPIC_AUTHORIZATION_FAILED,
    f"{len(values)} read, error {KafkaError(error).name() if error else None}",
)

bindings = [
    AclBinding(ResourceType.TOPIC, f"alice-{run}-", ResourcePatternType.PREFIXED, principal, "*",
               AclOperation.WRITE, AclPermissionType.ALLOW),
    AclBinding(ResourceType.TOPIC, f"alice-{run}-", ResourcePatternType.PREFIXED, principal, "*",
               AclOperation.READ, AclPermissionType.ALLOW),
]
for future in admin.create_acls(bindings).values():
    future.result(30)
mine = f"alice-{run}-orders"
for future in admin.create_topics([NewTopic(mine, 1, 3)]).values():
    future.result(30)
sent, error = produce(dict(plain, **{"enable.idempotence": True}), mine, 20)
values, consume_error = consume(dict(plain, **{"group.id": f"alice-{run}"}), mine, 20)
verdict(
    "SASL_PLAINTEXT PLAIN with prefixed ACLs: produce and consume",
    sent == 20 and len(values) == 20,
    f"{sent} delivered, {len(values)} read (errors: {error}, {consume_error})",
)
everything = AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY, principal, None,
                              AclOperation.ANY, AclPermissionType.ANY)
listed = admin.describe_acls(everything).result(30)
verdict("DescribeAcls lists the bindings", len(listed) == 3, f"{len(listed)} bindings of {principal}")
deleted = admin.delete_acls([everything])
removed = sum(len(f.result(30)) for f in deleted.values())
sent, error = produce(dict(plain, **{"message.timeout.ms": 10000}), mine, 3, timeout_s=15)
verdict(
    "DeleteAcls removes them: produce refused again",
    removed == 3 and sent == 0 and error == KafkaError.TOPIC_AUTHORIZATION_FAILED,
    f"{removed} removed, then {sent} delivered, error {KafkaError(error).name() if error else None}",
)

# --- OAUTHBEARER (the cluster's `--oauthbearer unsecured`): librdkafka's own unsigned token -----
oauth = {
    "security.protocol": "SASL_SSL",
    "bootstrap.servers": sasl_ssl,
    "ssl.ca.location": f"{directory}/ca.pem",
    "sasl.mechanisms": "OAUTHBEARER",
    "enable.sasl.oauthbearer.unsecure.jwt": True,
    "sasl.oauthbearer.config": "principal=admin",
}
oauth_topic = f"sec-oauth-{run}"
for future in admin.create_topics([NewTopic(oauth_topic, 1, 3)]).values():
    future.result(30)
for protocol, servers in (("SASL_SSL", sasl_ssl), ("SASL_PLAINTEXT", sasl_plaintext)):
    config = dict(oauth, **{"security.protocol": protocol, "bootstrap.servers": servers})
    if protocol == "SASL_PLAINTEXT":
        del config["ssl.ca.location"]
    sent, error = produce(dict(config, **{"enable.idempotence": True}), oauth_topic, 20)
    values, consume_error = consume(
        dict(config, **{"group.id": f"oauth-{protocol}-{run}"}), oauth_topic, 20 if protocol == "SASL_SSL" else 40
    )
    verdict(
        f"{protocol} OAUTHBEARER (unsecured JWT, User:admin): produce and consume",
        sent == 20 and len(values) == (20 if protocol == "SASL_SSL" else 40),
        f"{sent} delivered, {len(values)} read (errors: {error}, {consume_error})",
    )
# A token for a principal no ACL names: authenticated, then refused by the authorizer.
nobody = dict(oauth, **{"sasl.oauthbearer.config": f"principal=nobody-{run}", "message.timeout.ms": 10000})
sent, error = produce(nobody, oauth_topic, 3, timeout_s=15)
verdict(
    "OAUTHBEARER as a principal without ACLs: produce refused",
    sent == 0 and error == KafkaError.TOPIC_AUTHORIZATION_FAILED,
    f"{sent} delivered, error {KafkaError(error).name() if error else None}",
)

# --- mutual TLS: the SSL listener requires a certificate from the cluster's CA -----------------
# The generated client certificate's subject is CN=admin: principal User:CN=admin, a super user.
ssl_base = {
    "bootstrap.servers": mtls,
    "security.protocol": "SSL",
    "ssl.ca.location": f"{directory}/ca.pem",
}
with_certificate = dict(
    ssl_base,
    **{
        "ssl.certificate.location": f"{directory}/client.pem",
        "ssl.key.location": f"{directory}/client.key",
    },
)
mtls_topic = f"sec-mtls-{run}"
mtls_admin = AdminClient(with_certificate)
for future in mtls_admin.create_topics([NewTopic(mtls_topic, 1, 3)]).values():
    future.result(30)
sent, error = produce(dict(with_certificate, **{"enable.idempotence": True}), mtls_topic, 50)
values, consume_error = consume(dict(with_certificate, **{"group.id": f"mtls-{run}"}), mtls_topic, 50)
verdict(
    "SSL with a client certificate (User:CN=admin): produce and consume",
    sent == 50 and len(values) == 50,
    f"{sent} delivered, {len(values)} read (errors: {error}, {consume_error})",
)
sent, error = produce(
    dict(ssl_base, **{"message.timeout.ms": 5000}), mtls_topic, 3, timeout_s=8
)
verdict(
    "SSL without a client certificate: refused at the TLS handshake",
    sent == 0 and error is not None,
    f"{sent} delivered, error {KafkaError(error).name() if error else None}",
)

# --- anonymous on the PLAINTEXT listener -------------------------------------------------------
sent, error = produce(
    {"bootstrap.servers": plaintext, "message.timeout.ms": 10000}, topic, 3, timeout_s=15
)
verdict(
    "anonymous PLAINTEXT client under the authorizer: produce refused",
    sent == 0 and error == KafkaError.TOPIC_AUTHORIZATION_FAILED,
    f"{sent} delivered, error {KafkaError(error).name() if error else None}",
)

# --- nothing crashed ---------------------------------------------------------------------------
pids = cluster_file(directory)["pids"]
alive = [pid for pid in pids if os.path.exists(f"/proc/{pid}")]
log(f"node pids {pids}, alive {alive}")
verdict("every node is still running", alive == pids, f"{len(alive)}/{len(pids)} nodes alive")
finish()
