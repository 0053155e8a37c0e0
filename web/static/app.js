// roomq demo chat: MQTT 5 over WebSocket with MQTT.js, following docs/protocol.md.
// Rooms are joined by subscribing to rooms/{room} with the user property `since` (the last id
// seen), so a join replays the history and a reconnect resumes without gaps or duplicates.
'use strict';

(() => {
  const $ = (id) => document.getElementById(id);
  const RPC_TIMEOUT_MS = 10000;
  const MAX_ERRORS = 5;
  const SESSION_KEY = 'roomq.session'; // sessionStorage: {user, rooms, current}

  const state = {
    client: null,
    user: '',
    clientId: '',
    replyTopic: '',
    everConnected: false,
    rooms: new Map(), // name -> {name, lastId, epoch, members: Set, log: <ol>, item: <li>}
    current: '',
    presence: new Map(), // user -> {online, connections}
    rpcs: new Map(), // correlation data -> {resolve, reject, timer}
    seq: 0,
    pubacks: new Map(), // packet id -> PUBACK reason code, for 0x10 which MQTT.js hides
  };

  // ---- errors and small helpers ----

  function showError(text) {
    const p = document.createElement('p');
    p.textContent = text;
    const close = document.createElement('button');
    close.type = 'button';
    close.textContent = '×';
    close.title = 'dismiss';
    close.onclick = () => p.remove();
    p.prepend(close);
    $('errors').prepend(p);
    while ($('errors').children.length > MAX_ERRORS) $('errors').lastChild.remove();
  }

  // describe turns an MQTT.js error (with a reason code) or an RPC error into one line.
  function describe(err) {
    if (err && err.rpcCode) return `${err.rpcCode}: ${err.message}`;
    if (err && typeof err.code === 'number') {
      return `${err.message} (reason code 0x${err.code.toString(16).padStart(2, '0')})`;
    }
    return (err && err.message) || String(err);
  }

  function text(payload) {
    return new TextDecoder().decode(payload);
  }

  function parseJSON(payload) {
    try {
      return JSON.parse(text(payload));
    } catch {
      return null;
    }
  }

  // userProperty returns one user property of a received packet (the last, if repeated).
  function userProperty(packet, key) {
    const v = packet.properties && packet.properties.userProperties && packet.properties.userProperties[key];
    return Array.isArray(v) ? v[v.length - 1] : v;
  }

  function timeOf(ms) {
    const t = document.createElement('time');
    const d = new Date(ms || Date.now());
    t.dateTime = d.toISOString();
    t.textContent = d.toLocaleTimeString();
    return t;
  }

  function line(author, ms, body) {
    const li = document.createElement('li');
    const a = document.createElement('span');
    a.className = 'author';
    a.textContent = author;
    const b = document.createElement('span');
    b.className = 'text';
    b.textContent = body;
    li.append(a, timeOf(ms), b);
    return li;
  }

  function notice(log, body) {
    const li = document.createElement('li');
    li.className = 'notice';
    li.textContent = body;
    log.append(li);
    scrollDown(log.parentElement);
  }

  function scrollDown(el) {
    el.scrollTop = el.scrollHeight;
  }

  function saveSession() {
    sessionStorage.setItem(SESSION_KEY, JSON.stringify({
      user: state.user, rooms: [...state.rooms.keys()], current: state.current,
    }));
  }

  function loadSession() {
    try {
      return JSON.parse(sessionStorage.getItem(SESSION_KEY) || 'null');
    } catch {
      return null;
    }
  }

  // ---- connection ----

  function setStatus(s) {
    const el = $('status');
    el.textContent = s;
    el.className = `status ${s}`;
  }

  function connect(user, password, rooms, current) {
    state.user = user;
    state.clientId = `web-${Math.random().toString(36).slice(2, 12)}`;
    state.replyTopic = `users/${user}/replies/${state.clientId}`;
    state.everConnected = false;
    const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const client = mqtt.connect(`${scheme}//${location.host}/mqtt`, {
      protocolVersion: 5,
      clientId: state.clientId,
      username: user,
      password: password || undefined,
      clean: true,
      resubscribe: false, // we rejoin ourselves, with the current `since` of each room
      reconnectPeriod: 1000,
      connectTimeout: 10000,
      keepalive: 30,
    });
    state.client = client;
    window.roomq = { client, state }; // for the browser console (and the browser test)
    $('me').textContent = user;
    $('login').hidden = true;
    $('session').hidden = false;
    $('chat').hidden = false;
    for (const name of rooms || []) addRoom(name);
    if (current && state.rooms.has(current)) selectRoom(current);
    saveSession();

    client.on('connect', onConnect);
    client.on('reconnect', () => setStatus('reconnecting'));
    client.on('offline', () => setStatus('offline'));
    client.on('close', () => { if ($('status').textContent === 'online') setStatus('offline'); });
    client.on('error', (err) => {
      showError(`connection: ${describe(err)}`);
      // Refused at CONNECT (a CONNACK reason code): back to the login form.
      if (!state.everConnected && typeof err.code === 'number' && err.code >= 0x80) logout();
    });
    client.on('packetreceive', (packet) => {
      if (packet.cmd === 'puback') state.pubacks.set(packet.messageId, packet.reasonCode || 0);
    });
    client.on('message', onMessage);
  }

  function onConnect() {
    state.everConnected = true;
    const st = $('status');
    st.dataset.connects = String(Number(st.dataset.connects) + 1);
    setStatus('online');
    const u = state.user;
    state.client.subscribe(
      [`users/${u}/inbox`, `users/${u}/events`, state.replyTopic, 'presence/+'],
      { qos: 1 },
      (err) => {
        if (err) showError(`subscribe: ${describe(err)}`);
        else listRooms();
      },
    );
    for (const r of state.rooms.values()) subscribeRoom(r);
  }

  function logout() {
    if (state.client) state.client.end(true);
    state.client = null;
    sessionStorage.removeItem(SESSION_KEY);
    for (const r of [...state.rooms.values()]) removeRoom(r);
    state.presence.clear();
    renderOnline();
    $('direct').replaceChildren();
    $('status').dataset.connects = '0';
    setStatus('offline');
    $('login').hidden = false;
    $('session').hidden = true;
    $('chat').hidden = true;
  }

  // ---- RPC: $rpc/{command} with a response topic under users/{user}/replies/ ----

  function rpc(command, args) {
    return new Promise((resolve, reject) => {
      if (!state.client || !state.client.connected) {
        reject(new Error(`${command}: not connected`));
        return;
      }
      const corr = `${state.clientId}-${++state.seq}`;
      const timer = setTimeout(() => {
        state.rpcs.delete(corr);
        reject(new Error(`${command}: no answer within ${RPC_TIMEOUT_MS / 1000} s`));
      }, RPC_TIMEOUT_MS);
      state.rpcs.set(corr, { resolve, reject, timer });
      state.client.publish(`$rpc/${command}`, JSON.stringify(args), {
        qos: 1, properties: { responseTopic: state.replyTopic, correlationData: corr },
      }, (err) => {
        if (!err) return;
        clearTimeout(timer);
        state.rpcs.delete(corr);
        reject(err);
      });
    });
  }

  function onReply(payload, packet) {
    const corr = packet.properties && packet.properties.correlationData;
    const call = corr && state.rpcs.get(text(corr));
    if (!call) return;
    state.rpcs.delete(text(corr));
    clearTimeout(call.timer);
    const body = parseJSON(payload);
    if (body && body.error) {
      const err = new Error(body.error.message || body.error.code);
      err.rpcCode = body.error.code;
      call.reject(err);
    } else if (body && 'result' in body) {
      call.resolve(body.result);
    } else {
      call.reject(new Error(`bad answer: ${text(payload)}`));
    }
  }

  // ---- rooms ----

  function addRoom(name) {
    let r = state.rooms.get(name);
    if (r) return r;
    const log = document.createElement('ol');
    log.className = 'log';
    log.dataset.room = name;
    log.hidden = true;
    $('messages').append(log);
    const item = document.createElement('li');
    item.dataset.room = name;
    const label = document.createElement('span');
    label.textContent = `# ${name}`;
    label.onclick = () => selectRoom(name);
    const leave = document.createElement('button');
    leave.type = 'button';
    leave.textContent = '×';
    leave.title = `leave ${name}`;
    leave.onclick = () => leaveRoom(name);
    item.append(label, leave);
    $('rooms').append(item);
    r = { name, lastId: 0, epoch: '', members: new Set(), log, item };
    state.rooms.set(name, r);
    return r;
  }

  function removeRoom(r) {
    r.log.remove();
    r.item.remove();
    state.rooms.delete(r.name);
    if (state.current === r.name) {
      const next = state.rooms.keys().next();
      selectRoom(next.done ? '' : next.value);
    }
  }

  function selectRoom(name) {
    state.current = name;
    for (const r of state.rooms.values()) {
      r.log.hidden = r.name !== name;
      r.item.classList.toggle('current', r.name === name);
    }
    $('room-title').textContent = name ? `# ${name}` : 'Join a room';
    for (const el of $('send-form').elements) el.disabled = !name;
    renderMembers();
    if (name) scrollDown($('messages'));
    saveSession();
  }

  function joinRoom(name) {
    const known = state.rooms.has(name);
    const r = addRoom(name);
    selectRoom(name);
    if (!known) {
      saveSession();
      if (state.client && state.client.connected) subscribeRoom(r);
    }
  }

  // subscribeRoom joins: events first (so no userJoined is missed), then the room with `since`.
  function subscribeRoom(r) {
    const props = { userProperties: { since: String(r.lastId) } };
    if (r.epoch) props.userProperties.epoch = r.epoch;
    state.client.subscribe(`rooms/${r.name}/events`, { qos: 1 }, (err) => {
      if (err) showError(`room events of ${r.name}: ${describe(err)}`);
    });
    state.client.subscribe(`rooms/${r.name}`, { qos: 1, properties: props }, (err) => {
      if (err) {
        showError(`join ${r.name}: ${describe(err)}`);
        if (state.rooms.get(r.name) === r && r.lastId === 0) {
          state.client.unsubscribe(`rooms/${r.name}/events`);
          removeRoom(r);
          saveSession();
        }
        return;
      }
      refreshMembers(r);
    });
  }

  function leaveRoom(name) {
    const r = state.rooms.get(name);
    if (!r) return;
    if (state.client && state.client.connected) {
      state.client.unsubscribe([`rooms/${name}`, `rooms/${name}/events`]);
    }
    removeRoom(r);
    saveSession();
  }

  // listRooms shows the rooms this user may join (roomList).
  async function listRooms() {
    try {
      const names = await rpc('roomList', {});
      const ul = $('all-rooms');
      ul.replaceChildren();
      for (const name of names) {
        const li = document.createElement('li');
        li.dataset.room = name;
        li.textContent = name;
        li.addEventListener('click', () => joinRoom(name));
        ul.append(li);
      }
    } catch (err) {
      showError(`list rooms: ${describe(err)}`);
    }
  }

  async function createRoom(name) {
    try {
      await rpc('roomCreate', { room: name });
      joinRoom(name);
      listRooms();
    } catch (err) {
      showError(`create room ${name}: ${describe(err)}`);
    }
  }

  async function refreshMembers(r) {
    try {
      const users = await rpc('roomGetAccessList', { room: r.name, list: 'userlist' });
      r.members = new Set(users);
      if (state.current === r.name) renderMembers();
    } catch (err) {
      showError(`members of ${r.name}: ${describe(err)}`);
    }
  }

  function renderMembers() {
    const r = state.rooms.get(state.current);
    const items = r ? [...r.members].sort().map((u) => {
      const li = document.createElement('li');
      li.dataset.user = u;
      li.textContent = u;
      return li;
    }) : [];
    $('members').replaceChildren(...items);
  }

  function onRoomMessage(name, payload, packet) {
    const r = state.rooms.get(name);
    if (!r) return;
    const msg = parseJSON(payload);
    const id = Number(userProperty(packet, 'id') ?? (msg && msg.id));
    const epoch = userProperty(packet, 'epoch');
    if (epoch && r.epoch && epoch !== r.epoch) resetHistory(r, epoch);
    if (epoch) r.epoch = epoch;
    if (!(id > r.lastId)) return; // seen already
    r.lastId = id;
    let body;
    if (msg && typeof msg.textMessage === 'string') {
      body = msg.textMessage;
    } else if (msg && typeof msg === 'object') {
      const { id: _i, author: _a, timestamp: _t, ...rest } = msg;
      body = JSON.stringify(rest);
    } else {
      body = `(${payload.length} bytes)`;
    }
    const author = userProperty(packet, 'author') ?? (msg && msg.author) ?? '?';
    const ts = Number(userProperty(packet, 'timestamp') ?? (msg && msg.timestamp));
    const li = line(author, ts, body);
    li.classList.add('msg');
    li.dataset.id = String(id);
    r.log.append(li);
    if (state.current === name) scrollDown($('messages'));
  }

  // resetHistory starts a room over at a new history epoch, whose ids start again. Both the
  // historyReset event and a message with another epoch call it, whichever comes first.
  function resetHistory(r, epoch) {
    if (r.epoch === epoch) return;
    r.epoch = epoch;
    r.lastId = 0;
    notice(r.log, 'The room history was reset.');
  }

  function onRoomEvent(name, ev) {
    const r = state.rooms.get(name);
    if (!r || !ev) return;
    switch (ev.event) {
      case 'userJoined':
        r.members.add(ev.user);
        break;
      case 'userLeft':
        r.members.delete(ev.user);
        break;
      case 'roomDeleted':
        showError(`room ${name} was deleted`);
        removeRoom(r);
        saveSession();
        return;
      default:
        return;
    }
    if (state.current === name) renderMembers();
  }

  function sendRoomMessage(body) {
    const room = state.current;
    state.client.publish(`rooms/${room}`, JSON.stringify({ textMessage: body }), { qos: 1 }, (err) => {
      if (err) showError(`message to ${room} refused: ${describe(err)}`);
    });
  }

  // ---- users: events, presence, direct messages ----

  function onUserEvent(ev) {
    if (!ev) return;
    const r = state.rooms.get(ev.room);
    switch (ev.event) {
      case 'roomAccessRemoved':
        showError(`you lost access to room ${ev.room}`);
        if (r) { removeRoom(r); saveSession(); }
        break;
      case 'historyGap':
        if (r) notice(r.log, `Messages ${ev.from}–${ev.to} are no longer in the history.`);
        break;
      case 'historyReset':
        if (r && ev.epoch) resetHistory(r, ev.epoch);
        break;
      case 'directMessageEcho': // sent from another connection of ours
        if (ev.message) addDirect(`${state.user} → ${ev.to}`, ev.message.timestamp, ev.message.textMessage, 'out');
        break;
      default:
    }
  }

  function onPresence(user, payload) {
    const p = parseJSON(payload);
    if (p && p.online) state.presence.set(user, p);
    else state.presence.delete(user);
    renderOnline();
  }

  function renderOnline() {
    const items = [...state.presence.keys()].sort().map((u) => {
      const li = document.createElement('li');
      li.dataset.user = u;
      const name = document.createElement('span');
      name.textContent = u === state.user ? `${u} (you)` : u;
      if (u === state.user) li.className = 'me';
      else {
        name.title = `direct message to ${u}`;
        name.onclick = () => { $('dm-to').value = u; $('dm-text').focus(); };
      }
      const n = state.presence.get(u).connections;
      li.append(name, document.createTextNode(n > 1 ? ` ×${n}` : ''));
      return li;
    });
    $('online').replaceChildren(...items);
  }

  function addDirect(who, ms, body, dir) {
    const li = line(who, ms, body);
    li.classList.add('dm', dir);
    $('direct').append(li);
    scrollDown($('direct'));
  }

  function sendDirect(to, body) {
    state.client.publish(`users/${to}/inbox`, JSON.stringify({ textMessage: body }), { qos: 1 }, (err, packet) => {
      const code = packet && state.pubacks.get(packet.messageId);
      if (packet) state.pubacks.delete(packet.messageId);
      if (err) {
        showError(`direct message to ${to} refused: ${describe(err)}`);
      } else if (code === 0x10) {
        showError(`direct message to ${to} not delivered: ${to} is not online (reason code 0x10)`);
      } else {
        addDirect(`${state.user} → ${to}`, Date.now(), body, 'out');
      }
    });
  }

  function onMessage(topic, payload, packet) {
    const u = state.user;
    const parts = topic.split('/');
    if (parts[0] === 'rooms' && parts.length === 2) onRoomMessage(parts[1], payload, packet);
    else if (parts[0] === 'rooms' && parts[2] === 'events') onRoomEvent(parts[1], parseJSON(payload));
    else if (parts[0] === 'presence') onPresence(parts[1], payload);
    else if (topic === state.replyTopic) onReply(payload, packet);
    else if (topic === `users/${u}/events`) onUserEvent(parseJSON(payload));
    else if (topic === `users/${u}/inbox`) {
      const m = parseJSON(payload) || {};
      addDirect(m.author || '?', m.timestamp, m.textMessage, 'in');
    }
  }

  // ---- forms ----

  $('login').addEventListener('submit', (e) => {
    e.preventDefault();
    connect($('login-user').value.trim(), $('login-password').value, [], '');
    $('login-password').value = '';
  });
  $('logout').addEventListener('click', logout);
  $('room-form').addEventListener('submit', (e) => {
    e.preventDefault();
    joinRoom($('room-name').value.trim());
    $('room-name').value = '';
  });
  $('rooms-refresh').addEventListener('click', listRooms);
  $('room-create').addEventListener('click', () => {
    const name = $('room-name').value.trim();
    if (!name) { $('room-name').reportValidity(); return; }
    createRoom(name);
    $('room-name').value = '';
  });
  $('send-form').addEventListener('submit', (e) => {
    e.preventDefault();
    sendRoomMessage($('send-text').value);
    $('send-text').value = '';
  });
  $('dm-form').addEventListener('submit', (e) => {
    e.preventDefault();
    sendDirect($('dm-to').value.trim(), $('dm-text').value);
    $('dm-text').value = '';
  });

  // A reload keeps the user and the joined rooms of this tab (sessionStorage); the history
  // comes back from the broker, since the page starts with no message.
  const saved = loadSession();
  if (saved && saved.user) {
    $('login-user').value = saved.user;
    connect(saved.user, '', saved.rooms, saved.current);
  }
})();
