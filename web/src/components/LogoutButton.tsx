import { api } from "../api/endpoints";

/** Signs out (ending the session at the provider too) and starts over. */
export function LogoutButton() {
  const logout = async () => {
    try {
      await api.logout();
    } finally {
      window.location.assign("/");
    }
  };
  return (
    <button type="button" className="link-button" onClick={logout}>
      Log out
    </button>
  );
}
