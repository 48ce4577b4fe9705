// Live updates over Socket.IO (docs/realtime.md): patches to the board, the unread count,
// resume by position after a reconnect.
import { io } from 'socket.io-client';
import { t } from './util.js';
import { setUnread } from './shell.js';

const BOARD_EVENTS = ['card.moved', 'cards.moved', 'card.added', 'card.updated', 'card.removed'];

export function connectLive(board) {
  const status = document.getElementById('live');
  let position = null;
  const socket = io({
    auth: (cb) => cb(position === null ? {} : { after: position }),
  });
  const seen = (event) => {
    if (typeof event?.position === 'number' && (position === null || event.position > position)) position = event.position;
  };
  socket.on('connect', () => {
    status.textContent = t('live.connected');
    document.body.dataset.live = 'connected';
  });
  socket.on('disconnect', () => {
    status.textContent = t('live.disconnected');
    document.body.dataset.live = 'disconnected';
  });
  socket.on('ready', (data) => {
    if (position === null && typeof data?.position === 'number') position = data.position;
    document.body.dataset.live = 'ready';
  });
  socket.on('resync', (data) => {
    if (typeof data?.position === 'number') position = data.position;
    board.refresh();
  });
  for (const type of BOARD_EVENTS) {
    socket.on(type, (event) => {
      seen(event);
      board.onEvent(type, event);
    });
  }
  socket.on('notification', (event) => {
    seen(event);
    if (typeof event?.data?.unread === 'number') setUnread(event.data.unread);
  });
  socket.on('definitions.changed', (event) => {
    seen(event);
    board.refresh();
  });
  socket.on('session.ended', () => location.assign('/login'));
  return socket;
}
