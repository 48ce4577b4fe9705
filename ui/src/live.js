// Live updates over Socket.IO (docs/realtime.md) for every screen: screens register
// handlers per event type; customers on screen are subscribed (again after a reconnect);
// the position of the last event is kept so a reconnect replays what was missed.
import { io } from 'socket.io-client';
import { t } from './util.js';
import { setUnread } from './shell.js';

const TYPES = [
  'card.moved', 'cards.moved', 'card.added', 'card.updated', 'card.removed',
  'customer.updated', 'timeline.added', 'notification', 'reminder.due', 'work_order.updated',
  'definitions.changed', 'job.failed', 'presence',
];

export function connectLive() {
  const status = document.getElementById('live');
  const handlers = new Map(); // type → Set<fn>
  const customers = new Map(); // customer id → number of screens showing it
  let position = null;
  const socket = io({
    auth: (cb) => cb(position === null ? {} : { after: position }),
  });
  const emit = (type, event) => {
    for (const fn of handlers.get(type) || []) {
      try {
        fn(event);
      } catch (error) {
        console.error(`live ${type}`, error);
      }
    }
  };
  socket.on('connect', () => {
    if (status) status.textContent = t('live.connected');
    document.body.dataset.live = 'connected';
    for (const id of customers.keys()) socket.emit('subscribe', { customer_id: id });
  });
  socket.on('disconnect', () => {
    if (status) status.textContent = t('live.disconnected');
    document.body.dataset.live = 'disconnected';
  });
  socket.on('ready', (data) => {
    if (position === null && typeof data?.position === 'number') position = data.position;
    document.body.dataset.live = 'ready';
  });
  socket.on('resync', (data) => {
    if (typeof data?.position === 'number') position = data.position;
    emit('resync', data);
  });
  for (const type of TYPES) {
    socket.on(type, (event) => {
      if (typeof event?.position === 'number' && (position === null || event.position > position)) position = event.position;
      emit(type, event);
    });
  }
  socket.on('session.ended', () => location.assign('/login'));
  const live = {
    socket,
    /** Calls `fn(event)` for every event of `type` (also 'resync'); returns the unsubscriber. */
    on(type, fn) {
      if (!handlers.has(type)) handlers.set(type, new Set());
      handlers.get(type).add(fn);
      return () => handlers.get(type)?.delete(fn);
    },
    /** Hears the customer's events while it is on screen; resolves to the server's ack. */
    watch(customerId) {
      customers.set(customerId, (customers.get(customerId) || 0) + 1);
      return new Promise((resolve) => {
        if (!socket.connected) return resolve({ ok: true, later: true });
        socket.timeout(5000).emit('subscribe', { customer_id: customerId }, (err, ack) => resolve(err ? { ok: false } : ack));
      });
    },
    unwatch(customerId) {
      const n = (customers.get(customerId) || 0) - 1;
      if (n > 0) return customers.set(customerId, n);
      customers.delete(customerId);
      if (socket.connected) socket.emit('unsubscribe', { customer_id: customerId });
    },
    disconnect: () => socket.disconnect(),
    connect: () => socket.connect(),
  };
  live.on('notification', (event) => {
    if (typeof event?.data?.unread === 'number') setUnread(event.data.unread);
  });
  return live;
}
