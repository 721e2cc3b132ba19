#!/usr/bin/env python3
"""A Paho Python (Debian's python3-paho-mqtt) client for the interop tests.

sub:  subscribes to --topic, prints "SUBSCRIBED <granted>" once the SUBACK is in, then one
      line per message ("<topic>\t<qos>\t<retain>\t<payload>") and exits after --count.
pub:  publishes --message to --topic, waits for the handshake, disconnects.
will: connects with a will on --topic, prints "CONNECTED", then waits to be killed.
Every wait is bounded by --timeout; a timeout exits 2.
"""
import argparse
import sys
import threading

import paho.mqtt.client as mqtt

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
args = parser.parse_args()

done = threading.Event()
failure = []


def say(line):
    print(line, flush=True)


client = mqtt.Client(client_id=args.client_id, clean_session=not args.persistent, transport=args.transport, protocol=mqtt.MQTTv311)
if args.transport == 'websockets':
    client.ws_set_options(path=args.path)
if args.mode == 'will':
    client.will_set(args.topic, args.message, qos=args.qos, retain=args.retain)

received = []


def on_connect(c, userdata, flags, rc):
    if rc != 0:
        failure.append('CONNACK %d' % rc)
        done.set()
        return
    say('CONNECTED session_present=%d' % flags.get('session present', 0))
    if args.mode == 'sub':
        c.subscribe(args.topic, args.qos)
    elif args.mode == 'pub':
        # on_publish: written (QoS 0), PUBACK (QoS 1) or PUBCOMP (QoS 2) received
        c.publish(args.topic, args.message, qos=args.qos, retain=args.retain)


def on_subscribe(c, userdata, mid, granted):
    say('SUBSCRIBED %s' % ','.join(str(g) for g in granted))


def on_message(c, userdata, message):
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
