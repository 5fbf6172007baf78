import { useEffect, useRef, useState } from 'react';

// One page, one minimal chat client over the /ws WebSocket (same origin, so it goes through Nginx).
export default function Home() {
  const [lines, setLines] = useState([]);
  const [status, setStatus] = useState('connecting');
  const [text, setText] = useState('');
  const socketRef = useRef(null);

  useEffect(() => {
    const scheme = window.location.protocol === 'https:' ? 'wss' : 'ws';
    const socket = new WebSocket(`${scheme}://${window.location.host}/ws`);
    socketRef.current = socket;
    socket.onopen = () => setStatus('connected');
    socket.onclose = () => setStatus('disconnected');
    socket.onerror = () => setStatus('error');
    socket.onmessage = (event) => setLines((prev) => [...prev.slice(-49), String(event.data)]);
    return () => socket.close();
  }, []);

  function send(event) {
    event.preventDefault();
    const socket = socketRef.current;
    if (socket && socket.readyState === WebSocket.OPEN && text) {
      socket.send(text);
      setText('');
    }
  }

  return (
    <main style={{ fontFamily: 'sans-serif', maxWidth: 640, margin: '2rem auto' }}>
      <h1>kathario-saas</h1>
      <p>
        Chat: <span id="chat-status">{status}</span>
      </p>
      <ul id="chat-lines">
        {lines.map((line, i) => (
          <li key={i}>{line}</li>
        ))}
      </ul>
      <form onSubmit={send}>
        <input value={text} onChange={(e) => setText(e.target.value)} placeholder="Say something" />
        <button type="submit">Send</button>
      </form>
    </main>
  );
}
