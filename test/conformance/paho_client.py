#!/usr/bin/env python3
"""A Paho Python (Debian's python3-paho-mqtt) client for the interop tests.

sub:  subscribes to --topic, prints "SUBSCRIBED <granted>" once the SUBACK is in, then one
      line per message ("<topic>\t<qos>\t<retain>\t<payload>") and exits after --count.
pub:  publishes --message to --topic, waits for the handshake, disconnects.
will: connects with a will on --topic, prints "CONNECTED", then waits to be killed.
Every wait is bounded by --timeout; a timeout exits 2.

--protocol 5 speaks MQTT 5 (paho 1.6's MQTTv5 API): message lines are then JSON objects
(topic, qos, retain, payload, properties as paho names them, correlation data in hex);
--user-property, --message-expiry, --content-type, --response-topic and --correlation-data go
on the PUBLISH (pub) or on the will (will, with --will-delay); --session-expiry sets the Session
Expiry Interval and clean start off (sub, will).
"""
import argparse
import json
import sys
import threading

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

parser = argparse.ArgumentParser()
parser.add_argument('mode', choices=['sub', 'pub', 'will'])
parser.add_argument('--host', default='127.0.0.1')
parser.add_argument('--port', type=int, required=True)
parser.add_argument('--transport', choices=['tcp', 'websockets'], default='tcp')
parser.add_argument('--path', default='/mqtt')
parser.add_argument('--topic', required=True)
parser.add_argument('--qos', type=int, default=0)
parser.add_argument('--count', type=int, default=1)
parser.add_argument('--message', default='')
parser.add_argument('--retain', action='store_true')
parser.add_argument('--client-id', default='')
parser.add_argument('--persistent', action='store_true')
parser.add_argument('--timeout', type=float, default=5.0)
parser.add_argument('--protocol', choices=['311', '5'], default='311')
parser.add_argument('--user-property', action='append', default=[], metavar='KEY=VALUE')
parser.add_argument('--message-expiry', type=int)
parser.add_argument('--content-type')
parser.add_argument('--response-topic')
parser.add_argument('--correlation-data')
parser.add_argument('--will-delay', type=int)
parser.add_argument('--session-expiry', type=int)
args = parser.parse_args()
v5 = args.protocol == '5'

done = threading.Event()
failure = []


def say(line):
    print(line, flush=True)


def message_properties(packet_type):
    """The v5 properties of the PUBLISH or the will the arguments ask for."""
    props = Properties(packet_type)
    for pair in args.user_property:
        key, value = pair.split('=', 1)
        props.UserProperty = (key, value)
    if args.message_expiry is not None:
        props.MessageExpiryInterval = args.message_expiry
    if args.content_type is not None:
        props.ContentType = args.content_type
    if args.response_topic is not None:
        props.ResponseTopic = args.response_topic
    if args.correlation_data is not None:
        props.CorrelationData = args.correlation_data.encode('utf-8')
    if args.will_delay is not None:
        props.WillDelayInterval = args.will_delay
    return props


if v5:
    # v5 has Clean Start on CONNECT instead of Clean Session: paho takes it in connect()
    client = mqtt.Client(client_id=args.client_id, transport=args.transport, protocol=mqtt.MQTTv5)
else:
    client = mqtt.Client(client_id=args.client_id, clean_session=not args.persistent, transport=args.transport, protocol=mqtt.MQTTv311)
if args.transport == 'websockets':
    client.ws_set_options(path=args.path)
if args.mode == 'will':
    client.will_set(args.topic, args.message, qos=args.qos, retain=args.retain, properties=message_properties(PacketTypes.WILLMESSAGE) if v5 else None)

received = []


def on_connect(c, userdata, flags, rc, properties=None):
    if rc != 0:
        failure.append('CONNACK %d' % rc)
        done.set()
        return
    say('CONNECTED session_present=%d' % flags.get('session present', 0))
    if args.mode == 'sub':
        c.subscribe(args.topic, args.qos)
    elif args.mode == 'pub':
        # on_publish: written (QoS 0), PUBACK (QoS 1) or PUBCOMP (QoS 2) received
        c.publish(args.topic, args.message, qos=args.qos, retain=args.retain, properties=message_properties(PacketTypes.PUBLISH) if v5 else None)


def on_subscribe(c, userdata, mid, granted, properties=None):
    # v5: ReasonCodes objects, whose value is the granted QoS or the refusal
    say('SUBSCRIBED %s' % ','.join(str(getattr(g, 'value', g)) for g in granted))


def on_message(c, userdata, message):
    if v5:
        say(json.dumps({'topic': message.topic, 'qos': message.qos, 'retain': bool(message.retain), 'payload': message.payload.decode('utf-8'),
                        'properties': message.properties.json() if message.properties is not None else {}}))
    else:
        say('%s\t%d\t%d\t%s' % (message.topic, message.qos, 1 if message.retain else 0, message.payload.decode('utf-8')))
    received.append(message)
    if len(received) >= args.count:
        done.set()


def on_publish(c, userdata, mid):
    done.set()


client.on_connect = on_connect
client.on_subscribe = on_subscribe
client.on_message = on_message
client.on_publish = on_publish
if v5:
    connect_properties = Properties(PacketTypes.CONNECT)
    if args.session_expiry is not None:
        connect_properties.SessionExpiryInterval = args.session_expiry
    client.connect(args.host, args.port, keepalive=30, clean_start=args.session_expiry is None, properties=connect_properties)
else:
    client.connect(args.host, args.port, keepalive=30)
client.loop_start()
if args.mode == 'will':
    # killed by the test; the timeout only bounds a forgotten process
    done.wait(args.timeout)
    sys.exit(2)
ok = done.wait(args.timeout)
client.disconnect()
client.loop_stop()
if failure:
    print(failure[0], file=sys.stderr)
    sys.exit(1)
sys.exit(0 if ok else 2)
