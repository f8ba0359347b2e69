// switchboard browser client: placeholder until the client lands (see issue "Browser client").
export {};
